"""Slack Web API clients: one per workspace token, all with the same retry policy."""

from __future__ import annotations

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from core.errors import NotFound
from installs.slack_store import SlackInstallationStore

DEFAULT_API_URL = "https://slack.com/api/"


def retry_handlers() -> list[AsyncRetryHandler]:
    """Honour ``Retry-After`` on 429s and retry dropped connections, a few times."""
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
    ]


def api_url(configured: str | None) -> str:
    """The Web API base URL, with the trailing slash slack_sdk needs."""
    url = configured or DEFAULT_API_URL
    return url if url.endswith("/") else url + "/"


class WorkspaceClients:
    """Builds the client of one workspace from its stored (encrypted) bot token."""

    def __init__(self, store: SlackInstallationStore, base_url: str | None) -> None:
        self.store = store
        self.base_url = api_url(base_url)

    def with_token(self, token: str | None) -> AsyncWebClient:
        """A client for ``token`` (``None``: a client for OAuth calls)."""
        return AsyncWebClient(token=token, base_url=self.base_url,
                              retry_handlers=retry_handlers())

    async def for_workspace(self, enterprise_id: str | None, team_id: str | None,
                            is_enterprise_install: bool) -> AsyncWebClient:
        """The bot client of a workspace (or an org-wide install).

        Raises:
            NotFound: the workspace has no installation (uninstalled).
        """
        bot = await self.store.async_find_bot(
            enterprise_id=enterprise_id, team_id=None if is_enterprise_install else team_id,
            is_enterprise_install=is_enterprise_install,
        )
        if bot is None or not bot.bot_token:
            raise NotFound(f"no Slack installation for team {team_id!r}")
        return self.with_token(bot.bot_token)
