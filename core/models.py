"""Which model a run talks to, and the long-lived provider clients behind it."""

from __future__ import annotations

from anthropic import AsyncAnthropic
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.providers.anthropic import AnthropicProvider

from core.errors import ConfigurationError
from core.prices import price_for
from core.sandbox import sandbox_model
from core.settings import SANDBOX_MODEL, Settings


class ModelFactory:
    """Builds the provider model for a model id; owns the provider's HTTP client.

    Create one at startup and ``aclose`` it at shutdown, so every run shares one
    connection pool.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._anthropic: AsyncAnthropic | None = None

    def check(self, model_id: str) -> str:
        """Validate a model id before a run is created; returns it unchanged.

        Raises:
            ConfigurationError: unknown model, or no credentials for it.
        """
        price_for(model_id)
        if model_id == SANDBOX_MODEL:
            return model_id
        if model_id.startswith("anthropic:"):
            if self.settings.anthropic_api_key is None:
                raise ConfigurationError(
                    f"model {model_id!r} needs ANTHROPIC_API_KEY (or TENANTRY_ANTHROPIC_API_KEY);"
                    " without credentials, ask for the offline model with --model sandbox"
                )
            return model_id
        raise ConfigurationError(f"no provider for model id {model_id!r}")

    def get(self, model_id: str) -> Model:
        """The model for ``model_id`` (validated with ``check``)."""
        self.check(model_id)
        if model_id == SANDBOX_MODEL:
            return sandbox_model()
        return AnthropicModel(
            model_id.split(":", 1)[1],
            provider=AnthropicProvider(anthropic_client=self._anthropic_client()),
        )

    def _anthropic_client(self) -> AsyncAnthropic:
        if self._anthropic is None:
            key = self.settings.anthropic_api_key
            assert key is not None
            self._anthropic = AsyncAnthropic(
                api_key=key.get_secret_value(),
                base_url=self.settings.anthropic_base_url,
                max_retries=self.settings.anthropic_max_retries,
            )
        return self._anthropic

    async def aclose(self) -> None:
        """Close the provider clients."""
        if self._anthropic is not None:
            await self._anthropic.close()
            self._anthropic = None
