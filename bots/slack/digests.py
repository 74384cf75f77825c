"""Posting digests into Slack: ``chat.postMessage`` with the workspace's own bot token.

Registered as the runtime's ``"slack"`` poster when the transport is mounted. Halts
and refusals also go, as a direct message from the app, to the people the tenant has
granted ``admin`` or ``owner`` under their principal of the destination's workspace
(``slack:<team>:<user>``). Slack's own workspace admins are admins in the App Home
too, but Slack offers no way to list them with the app's scopes, so those without a
grant see the notice in the channel only.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.posting import Notice
from bots.runtime import Runtime
from bots.slack import render
from bots.slack.clients import WorkspaceClients
from core.authz import list_grants
from core.digests.destinations import Destination, SlackDestination
from core.errors import NotFound
from core.logs import log

ADMIN_ROLES = frozenset({"owner", "admin"})
GONE = frozenset({"channel_not_found", "not_in_channel", "is_archived", "invalid_auth",
                  "account_inactive", "token_revoked", "team_access_not_granted"})
"""Slack's errors for a channel the app can no longer post in: the digest pauses."""


class SlackPoster:
    """The ``"slack"`` poster of a runtime."""

    def __init__(self, runtime: Runtime, clients: WorkspaceClients) -> None:
        self.runtime = runtime
        self.clients = clients

    async def _client(self, destination: SlackDestination) -> AsyncWebClient:
        """The workspace's bot client, or its org's for an org-wide install.

        Raises:
            NotFound: the app is not installed there any more.
        """
        try:
            return await self.clients.for_workspace(destination.enterprise_id,
                                                    destination.team_id, False)
        except NotFound:
            if destination.enterprise_id is None:
                raise
            return await self.clients.for_workspace(destination.enterprise_id, None, True)

    async def post(self, tenant_id: str, destination: Destination, notice: Notice) -> None:
        """``chat.postMessage`` into the destination channel.

        Raises:
            NotFound: no installation, or Slack says the channel cannot be posted in.
        """
        assert isinstance(destination, SlackDestination)
        client = await self._client(destination)
        try:
            await client.chat_postMessage(
                channel=destination.channel,
                text=render.digest(notice.title, notice.text, notice.kind))
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
            if error in GONE:
                raise NotFound(f"slack channel {destination.channel}: {error}") from None
            raise

    async def tell_admins(self, tenant_id: str, destination: Destination,
                          notice: Notice) -> int:
        """A direct message to each admin the tenant granted in this workspace; how many."""
        assert isinstance(destination, SlackDestination)
        prefix = f"slack:{destination.team_id}:"
        users = sorted({principal.removeprefix(prefix)
                        for principal, role in await self.runtime.db.run(list_grants, tenant_id)
                        if role in ADMIN_ROLES and principal.startswith(prefix)})
        if not users:
            return 0
        try:
            client = await self._client(destination)
        except NotFound:
            return 0
        told = 0
        text = render.digest_for_admin(notice.title, notice.text, destination.channel)
        for user in users:
            try:
                await client.chat_postMessage(channel=user, text=text)
                told += 1
            except SlackApiError as exc:
                log.info("digest notice not delivered to an admin",
                         error=str(exc.response.get("error")))
        return told
