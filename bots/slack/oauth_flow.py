"""Bolt's OAuth flow, taught to carry a tenant claim from the install link to the link.

``/slack/install?link=TOKEN`` starts the flow with a state that remembers the signed
install link; after Slack's redirect the installation is stored and, if the claim is
still good, the workspace (or the Enterprise org) is linked to the claim's tenant.
The claim logic lives in ``installs.oauth``; this module only routes Bolt to it, and
says on the success page whether the workspace is linked.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.oauth.async_callback_options import (
    AsyncCallbackOptions,
    AsyncFailureArgs,
    AsyncSuccessArgs,
)
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.models.installation import Installation

from bots.slack import render
from core.audit.log import AuditLog
from core.crypto import Keyring
from core.db.engine import Database
from core.logs import log
from installs.oauth import InstallResult, TenantClaimState, complete_install

INSTALL_RESULT = "tenantry_install_result"
"""Where ``store_installation`` leaves the ``InstallResult`` for the success page."""


def _first(request: AsyncBoltRequest, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None


class TenantOAuthFlow(AsyncOAuthFlow):
    """Bolt's ``AsyncOAuthFlow`` whose state carries the install link's tenant claim.

    Bolt serves both pages: the install page (a redirect to Slack) and the page after
    Slack's redirect. A dead install link raises ``InstallLinkError`` from
    ``issue_new_state``, before the installer is sent to Slack; the route refuses it.
    """

    def __init__(self, *, db: Database, keyring: Keyring, audit: AuditLog,
                 state_store: TenantClaimState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = db
        self.keyring = keyring
        self.audit = audit
        self.claims = state_store

    async def issue_new_state(self, request: AsyncBoltRequest) -> str:
        """A state remembering the install link, if the request came with one."""
        return await self.claims.async_issue(link_token=_first(request, "link"))

    async def store_installation(self, request: AsyncBoltRequest,
                                 installation: Installation) -> None:
        """Store the tokens (encrypted) and link the workspace if the claim holds."""
        claim = await self.claims.take_claim(_first(request, "state"))
        request.context[INSTALL_RESULT] = await self.db.run(
            complete_install, self.keyring, installation, claim, self.audit)


async def _installed(args: AsyncSuccessArgs) -> BoltResponse:
    """The page after a completed install: whether the workspace is now linked.

    Bolt's own success page cannot know that; the state cookie is deleted as it does.
    """
    result = args.request.context.get(INSTALL_RESULT)
    return BoltResponse(status=200, body=render.install_done(
        result if isinstance(result, InstallResult) else None), headers={
        "Content-Type": "text/html; charset=utf-8",
        "Set-Cookie": args.settings.state_utils.build_set_cookie_for_deletion(),
    })


async def _failed(args: AsyncFailureArgs) -> BoltResponse:
    """Bolt's own failure page, logged."""
    log.info("slack install failed", reason=args.reason,
             error=None if args.error is None else str(args.error))
    return await args.default.failure(args)


CALLBACKS = AsyncCallbackOptions(success=_installed, failure=_failed)
"""What the OAuth flow answers after Slack's redirect (``AsyncOAuthSettings.callback_options``)."""
