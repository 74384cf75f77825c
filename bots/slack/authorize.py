"""Bolt's authorisation of each request: the workspace's stored bot, remembered briefly.

Every request is authorised before it is acknowledged. Tenantry acts with bot tokens
only (the manifest asks for no user scopes), so a request is authorised by its
workspace's (or Enterprise org's) bot from the installation store; the stored bot
carries its id, user id and token, so no ``auth.test`` is needed.

A bot is remembered ``ttl_s`` seconds and read once per installation when it expires:
a burst of 200 requests each reading it delayed that burst's acknowledgements by about
200 ms. It is forgotten at once when this process deletes the installation, so one
uninstalled through another process stops being trusted within the TTL; the job behind
the acknowledgement reads the store and the link again in any case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.authorization.authorize_result import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.oauth.installation_store.models.bot import Bot

from installs.slack_store import SlackInstallationStore

AUTHORIZE_TTL_S = 30.0
"""How long a workspace's bot is trusted without reading the store again."""

_Installed = tuple[str | None, str | None]
"""Enterprise id and team id of an installation (``None`` team: an org-wide install)."""


class StoredBotAuthorize(AsyncAuthorize):
    """Authorises a request by its installation's bot, read at most once per ``ttl_s``.

    Args:
        store: The installation store Slack's OAuth flow saves to.
        clock: Monotonic seconds; tests pass their own.
    """

    def __init__(self, store: SlackInstallationStore, *, ttl_s: float = AUTHORIZE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self._bots: dict[_Installed, tuple[float, Bot | None]] = {}
        self._reading: dict[_Installed, asyncio.Lock] = {}

    async def __call__(self, *, context: AsyncBoltContext, enterprise_id: str | None,
                       team_id: str | None, user_id: str | None,
                       **_actor: str | None) -> AuthorizeResult | None:
        """The installation's bot as Bolt's ``AuthorizeResult``; ``None`` if there is none."""
        org = bool(context.is_enterprise_install)
        installed = (enterprise_id, None if org else team_id)
        known = self._bots.get(installed)
        if known is None or self.clock() - known[0] > self.ttl_s:
            # One read per installation at a time: a burst of its requests arriving as the
            # bot expires waits for that read instead of each reading the store.
            async with self._reading.setdefault(installed, asyncio.Lock()):
                known = self._bots.get(installed)
                if known is None or self.clock() - known[0] > self.ttl_s:
                    read_at = self.clock()
                    bot = await self.store.async_find_bot(
                        enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=org)
                    known = self._bots[installed] = (read_at, bot)
        bot = known[1]
        if bot is None or not bot.bot_token:
            return None
        return AuthorizeResult(enterprise_id=bot.enterprise_id, team_id=bot.team_id,
                               bot_id=bot.bot_id, bot_user_id=bot.bot_user_id,
                               bot_token=bot.bot_token, bot_scopes=bot.bot_scopes,
                               user_id=user_id)

    def forget(self, enterprise_id: str | None, team_id: str | None) -> None:
        """Stop trusting an installation whose tokens this process has just deleted."""
        self._bots.pop((enterprise_id, team_id), None)
