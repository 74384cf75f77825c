"""Bolt's OAuth flow, taught to carry a tenant claim from the install link to the link.

``/slack/install?link=TOKEN`` starts the flow with a state that remembers the signed
install link; after Slack's redirect the installation is stored and, if the claim is
still good, the workspace (or the Enterprise org) is linked to the claim's tenant.
The claim logic lives in ``installs.oauth``; this class only routes Bolt to it.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.oauth.async_callback_options import AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.models.installation import Installation

from bots.slack import render
from core.crypto import Keyring
from core.db.engine import Database
from core.logs import log
from installs.links import InstallLinkError
from installs.oauth import InstallResult, TenantClaimState, complete_install

INSTALL_RESULT = "tenantry_install_result"
"""Where ``store_installation`` leaves the ``InstallResult`` for the success page."""


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
