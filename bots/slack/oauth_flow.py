"""Bolt's OAuth flow, taught to carry a tenant claim from the install link to the link.

``/slack/install?link=TOKEN`` starts the flow with a state that remembers the signed
install link; after Slack's redirect the installation is stored and, if the claim is
still good, the workspace (or the Enterprise org) is linked to the claim's tenant.
The claim logic lives in ``installs.oauth``; this class only routes Bolt to it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.authorization.authorize_result import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_callback_options import AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation

from bots.slack import render
from core.crypto import Keyring
from core.db.engine import Database
from core.logs import log
from installs.links import InstallLinkError
from installs.oauth import InstallResult, TenantClaimState, complete_install
from installs.slack_store import SlackInstallationStore

INSTALL_RESULT = "tenantry_install_result"
"""Where ``store_installation`` leaves the ``InstallResult`` for the success page."""

AUTHORIZE_CACHE_S = 30.0
"""How long an authorisation is reused: shorter than a run, so a revoked token stops
being trusted within one run's time."""


def _first(request: AsyncBoltRequest, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None


class TenantOAuthFlow(AsyncOAuthFlow):
    """``AsyncOAuthFlow`` whose state carries the install link's tenant claim.

    It also answers with Tenantry's own pages (``render``): a dead install link is
    refused before the installer is sent to Slack, and the page after Slack's redirect
    says whether the workspace is now linked, which Bolt's default page cannot know.
    """

    def __init__(self, *, db: Database, keyring: Keyring, state_store: TenantClaimState,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = db
        self.keyring = keyring
        self.claims = state_store
        self.success_handler = self._succeeded
        self.failure_handler = self._failed

    async def handle_installation(self, request: AsyncBoltRequest) -> BoltResponse:
        """Send the installer to Slack, or say at once why their install link is dead."""
        try:
            return await super().handle_installation(request)
        except InstallLinkError as dead:
            log.info("slack install refused", reason=dead.reason)
            return self._page(400, render.install_failed(dead.reason))

    async def issue_new_state(self, request: AsyncBoltRequest) -> str:
        """A state remembering the install link, if the request came with one."""
        return await self.claims.async_issue(link_token=_first(request, "link"))

    async def store_installation(self, request: AsyncBoltRequest,
                                 installation: Installation) -> None:
        """Store the tokens (encrypted) and link the workspace if the claim holds."""
        claim = await self.claims.take_claim(_first(request, "state"))
        request.context[INSTALL_RESULT] = await complete_install(
            self.db, self.keyring, installation, claim)

    def _page(self, status: int, body: str) -> BoltResponse:
        return BoltResponse(status=status, body=body, headers={
            "Content-Type": "text/html; charset=utf-8",
            "Set-Cookie": self.settings.state_utils.build_set_cookie_for_deletion(),
        })

    async def _succeeded(self, args: AsyncSuccessArgs) -> BoltResponse:
        result = args.request.context.get(INSTALL_RESULT)
        return self._page(200, render.install_done(
            result if isinstance(result, InstallResult) else None))

    async def _failed(self, args: AsyncFailureArgs) -> BoltResponse:
        log.info("slack install failed", reason=args.reason,
                 error=None if args.error is None else str(args.error))
        return self._page(args.suggested_status_code, render.install_failed(args.reason))


_Workspace = tuple[str | None, str | None, bool]
"""Enterprise id, team id, and whether the installation is the enterprise's."""


class _ExpiringCache(dict[str, AuthorizeResult]):
    """A dict whose entries vanish ``ttl`` seconds after they were set."""

    def __init__(self, ttl: float) -> None:
        super().__init__()
        self.ttl = ttl
        self._set_at: dict[str, float] = {}

    def __setitem__(self, key: str, value: AuthorizeResult) -> None:
        self._set_at[key] = time.monotonic()
        super().__setitem__(key, value)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str) and time.monotonic() - self._set_at.get(key, 0.0) > self.ttl:
            self._set_at.pop(key, None)
            self.pop(key, None)
        return super().__contains__(key)


class ExpiringAuthorize(AsyncInstallationStoreAuthorize):
    """Bolt's installation-store authorisation with its per-token cache made to expire.

    Bolt caches an authorisation per token forever once ``cache_enabled`` is on; here
    an entry lives ``AUTHORIZE_CACHE_S`` seconds, which saves the ``auth.test`` on a
    busy workspace's every request without trusting a revoked token for long. Tenantry
    acts with bot tokens only (the manifest asks for no user scopes), so it looks up
    the workspace's bot (``bot_only``): one lookup per workspace, not one per person.

    When a workspace's entry expires, one request renews it (the bot lookup and
    ``auth.test``); requests of the same workspace arriving meanwhile are authorised
    by the expired entry if it is younger than ``2 * AUTHORIZE_CACHE_S``, or else
    wait for the renewal. So a burst pays for one renewal, not one per request, and
    only the request that renews waits for it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cache_enabled=True, bot_only=True, **kwargs)
        self.authorize_result_cache = _ExpiringCache(AUTHORIZE_CACHE_S)
        self._renewing: dict[_Workspace, asyncio.Future[None]] = {}
        self._last: dict[_Workspace, tuple[float, AuthorizeResult]] = {}

    async def __call__(self, *, context: AsyncBoltContext, enterprise_id: str | None,
                       team_id: str | None, user_id: str | None,
                       **actor: str | None) -> AuthorizeResult | None:
        """Bolt's authorisation, renewed once per workspace at a time."""
        key = (enterprise_id, team_id, bool(context.is_enterprise_install))
        while (renewing := self._renewing.get(key)) is not None:
            last = self._last.get(key)
            if last is not None and time.monotonic() - last[0] <= 2 * AUTHORIZE_CACHE_S:
                return last[1]
            await asyncio.wait([renewing])
        done = asyncio.get_running_loop().create_future()
        self._renewing[key] = done
        try:
            result = await super().__call__(context=context, enterprise_id=enterprise_id,
                                            team_id=team_id, user_id=user_id, **actor)
        except BaseException:
            self._last.pop(key, None)
            raise
        finally:
            del self._renewing[key]
            done.set_result(None)
        last = self._last.get(key)
        if result is None:
            self._last.pop(key, None)
        elif last is None or last[1] is not result:
            self._last[key] = (time.monotonic(), result)
        return result


class RecentInstallations(SlackInstallationStore):
    """The installation store as Bolt's pre-acknowledgement authorisation reads it.

    Every request is authorised before it is acknowledged. A workspace's bot is kept
    ``AUTHORIZE_CACHE_S`` seconds (the same window as the token cache above) and
    dropped when this process deletes an installation; the job behind the
    acknowledgement re-reads the store and the link. The store reads in read-only
    transactions, which do not queue behind the runs' writes.
    """

    def __init__(self, db: Database, keyring: Keyring) -> None:
        super().__init__(db, keyring)
        self._seen: dict[tuple[str | None, str | None], tuple[float, Bot | None]] = {}
        self._generation = 0

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        """``SlackInstallationStore.async_find_bot``, remembered briefly."""
        key = (enterprise_id, None if is_enterprise_install else team_id)
        hit = self._seen.get(key)
        if hit is not None and time.monotonic() - hit[0] <= AUTHORIZE_CACHE_S:
            return hit[1]
        generation = self._generation
        bot = await super().async_find_bot(enterprise_id=enterprise_id, team_id=team_id,
                                           is_enterprise_install=is_enterprise_install)
        if generation == self._generation:
            self._seen[key] = (time.monotonic(), bot)
        return bot

    async def async_delete_all(self, *, enterprise_id: str | None,
                               team_id: str | None) -> None:
        """Forget everything remembered, then delete."""
        self._seen.clear()
        self._generation += 1
        await super().async_delete_all(enterprise_id=enterprise_id, team_id=team_id)
