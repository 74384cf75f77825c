"""The Slack app's settings, from ``TENANTRY_SLACK_*`` variables or ``.env``.

Slack is on with all three credentials and off with none; a partial set is a mistake
that ``tenantry serve`` refuses, naming what is missing.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError


class SlackSettings(BaseSettings):
    """Slack settings; the secrets are ``SecretStr``, so a printed settings object hides them.

    Attributes:
        signing_secret, client_id, client_secret: The Slack app's credentials; all three
            or none (Slack disabled).
        api_url: Base URL of Slack's Web API (a gateway or a local stand-in).
        command: The slash command Tenantry answers.
    """

    model_config = SettingsConfigDict(
        env_prefix="TENANTRY_SLACK_", env_file=".env", env_file_encoding="utf-8",
        extra="ignore",
    )

    signing_secret: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    api_url: str | None = None
    command: str = "/ask"

    def missing(self) -> list[str]:
        """Which credentials are missing, by variable name: all three means Slack is off."""
        names = {
            "TENANTRY_SLACK_SIGNING_SECRET": self.signing_secret,
            "TENANTRY_SLACK_CLIENT_ID": self.client_id,
            "TENANTRY_SLACK_CLIENT_SECRET": self.client_secret,
        }
        return [name for name, value in names.items() if not value]

    def enabled(self) -> bool:
        """Whether Slack is on: all three credentials, or none.

        Raises:
            ConfigurationError: only some are set (names what is missing).
        """
        missing = self.missing()
        if len(missing) == 3:
            return False
        if missing:
            raise ConfigurationError(
                f"Slack is half configured; missing: {', '.join(missing)} (set all three to "
                "enable Slack, or none to run without it)"
            )
        return True
