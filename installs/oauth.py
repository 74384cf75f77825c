"""The Slack OAuth flow's Tenantry half: states that carry a tenant claim, and completion.

How the tenant claim survives the round trip through Slack:

1. ``GET /slack/install?link=<install link token>``: ``TenantClaimState.async_issue``
   checks the link (without spending it, so an abandoned flow does not burn it) and,
   in the same transaction, stores a fresh random state (256 bits) with the link
   token, itself encrypted under the keyring, beside it. Only the random state goes
   to Slack; Bolt also pins it to the browser in a cookie.
2. Slack redirects to ``/slack/oauth_redirect?code&state``. Bolt checks the cookie and
   calls ``async_consume``: one conditional UPDATE marks the state consumed if it is
   unexpired and was never consumed, so a state works once.
3. After ``oauth.v2.access``, ``take_claim`` deletes the consumed state and returns its
   link token, once; ``complete_install`` stores the installation and spends the link
   while linking, in one transaction (``Database.run``).

So the claim cannot be forged (the state is random and the link token never leaves
the server; the token itself is authenticated), nor replayed (the state is consumed
once, its claim taken once, and the link's nonce spent once), nor moved to another
browser (Bolt's state cookie).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from logging import Logger
from typing import Any

from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from sqlalchemy import Column, String, Table, Text, delete, update
from sqlalchemy.engine import Connection

from core.audit.events import WORKSPACE_LINKED
from core.audit.log import AuditLog
from core.crypto import CryptoError, Keyring
from core.db.engine import Database
from core.db.schema import UTCDateTime, metadata
from core.errors import Conflict
from core.logs import log
from installs.links import InstallLinkError, Link, check_install_link, redeem_and_link, resolve
from installs.links import revoke as revoke_link
from installs.slack_store import delete_all, save_installation

STATE_TTL = timedelta(minutes=10)
PURGE_AFTER = timedelta(hours=1)
_MAX_STATE = 64

slack_oauth_states = Table(
    "slack_oauth_states",
    metadata,
    Column("state", String(_MAX_STATE), primary_key=True),
    Column("expire_at", UTCDateTime, nullable=False, index=True),
    Column("consumed_at", UTCDateTime),
    Column("link_token", Text),
)


class TenantClaimState(AsyncOAuthStateStore):
    """Bolt's OAuth state store: single-use, expiring states, each with an optional claim.

    Args:
        db: The app database (its table made by migration 0006).
        keyring: Checks install links, and encrypts the link token kept with a state.
        ttl: How long the installer has between the install page and Slack's redirect.
    """

    def __init__(self, db: Database, keyring: Keyring, ttl: timedelta = STATE_TTL) -> None:
        self.db = db
        self.keyring = keyring
        self.ttl = ttl

    @property
    def logger(self) -> Logger:
        """The logger slack_sdk and Bolt write this store's messages to."""
        return logging.getLogger(__name__)

    async def async_issue(self, *args: Any, link_token: str | None = None, **kwargs: Any) -> str:
        """A new state; with ``link_token``, the install link's claim rides with it.

        Raises:
            InstallLinkError: the link is forged, expired, used, or its tenant
                unusable; the installer should be told before going to Slack.
        """
        return await self.db.run(_issue, self.keyring, self.ttl, link_token)

    async def async_consume(self, state: str) -> bool:
        """Whether ``state`` was issued here, is unexpired and unused; it is used up now."""
        if not isinstance(state, str) or not state or len(state) > _MAX_STATE:
            return False
        return await self.db.run(_consume, state)

    async def take_claim(self, state: str | None) -> str | None:
        """The install link token that rode with a consumed ``state``, once; else ``None``."""
        if not state or len(state) > _MAX_STATE:
            return None
        sealed = await self.db.run(_take_claim, state)
        if sealed is None:
            return None
        try:
            return self.keyring.decrypt(sealed)
        except CryptoError:
            log.warning("slack oauth claim unreadable; installing without it")
            return None


def _issue(conn: Connection, keyring: Keyring, ttl: timedelta, link_token: str | None) -> str:
    if link_token is not None:
        check_install_link(conn, keyring, link_token)
    state = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    conn.execute(delete(slack_oauth_states).where(
        slack_oauth_states.c.expire_at < now - PURGE_AFTER
    ))
    conn.execute(slack_oauth_states.insert().values(
        state=state, expire_at=now + ttl,
        link_token=None if link_token is None else keyring.encrypt(link_token),
    ))
    return state


def _consume(conn: Connection, state: str) -> bool:
    now = datetime.now(UTC)
    c = slack_oauth_states.c
    return conn.execute(
        update(slack_oauth_states)
        .where(c.state == state, c.consumed_at.is_(None), c.expire_at > now)
        .values(consumed_at=now)
    ).rowcount == 1


def _take_claim(conn: Connection, state: str) -> str | None:
    """The sealed link token of a consumed state, deleting the state."""
    c = slack_oauth_states.c
    return conn.scalar(
        delete(slack_oauth_states)
        .where(c.state == state, c.consumed_at.is_not(None))
        .returning(c.link_token)
    )


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What an installation did to the workspace's tenancy, for the success page and logs.

    Attributes:
        tenant_id: The tenant the installation now serves (the link just made, or an
            active link from before); ``None`` if it serves none.
        linked_now: Whether this installation's claim made (or refreshed) the link.
        reason: Why the claim did not link: ``no_claim``, ``linked_elsewhere``, or an
            ``InstallLinkError.reason``; ``None`` when it did.
        detail: The error's own message, for logs and operators.
    """

    enterprise_id: str | None
    team_id: str | None
    is_enterprise_install: bool
    tenant_id: str | None
    linked_now: bool
    reason: str | None = None
    detail: str | None = None

    @property
    def linked(self) -> bool:
        """Whether requests from this installation will be served for some tenant."""
        return self.tenant_id is not None


def complete_install(
    conn: Connection, keyring: Keyring, installation: Installation, claim_token: str | None,
    audit: AuditLog | None = None,
) -> InstallResult:
    """Store an installation and, with a usable claim, link it to the claim's tenant.

    The installation is stored whatever the claim: Slack has already granted the
    tokens, and storing them lets an uninstall clean up and a later link apply. A
    refused claim rolls back to a savepoint, so its install link stays unspent. An
    org-wide install links the org (every team in it); any other links its workspace.
    A new link is recorded in the tenant's ``audit`` log, naming the installer.
    """
    save_installation(conn, keyring, installation)
    org = bool(installation.is_enterprise_install)
    enterprise_id = installation.enterprise_id
    team_id = None if org else installation.team_id
    where = {"enterprise_id": enterprise_id, "team_id": team_id}
    reason, detail = "no_claim", "the installation came without an install link"
    if claim_token is not None:
        try:
            with conn.begin_nested():
                made = redeem_and_link(
                    conn, keyring, claim_token, enterprise_id, team_id, installation.user_id
                )
        except InstallLinkError as exc:
            reason, detail = exc.reason, str(exc)
        except Conflict as exc:
            reason, detail = "linked_elsewhere", str(exc)
        else:
            if audit is not None:
                audit.append(conn, made.tenant_id, WORKSPACE_LINKED, {
                    "team_id": team_id, "enterprise_id": enterprise_id, "org": org,
                    "by": f"slack:{installation.team_id or enterprise_id}:{installation.user_id}",
                })
            log.info("slack install linked", tenant_id=made.tenant_id, org=org, **where)
            return InstallResult(enterprise_id, team_id, org, made.tenant_id, linked_now=True)
    current = resolve(conn, enterprise_id, team_id, org)
    serving = current.tenant_id if current is not None and current.active else None
    log.info("slack install not linked", reason=reason, tenant_id=serving, org=org, **where)
    return InstallResult(
        enterprise_id, team_id, org, serving, linked_now=False, reason=reason, detail=detail
    )


def uninstall(
    conn: Connection, enterprise_id: str | None, team_id: str | None,
    is_enterprise_install: bool,
) -> Link | None:
    """Forget a workspace's (or an org's) tokens and revoke its link (``app_uninstalled``).

    One transaction, so no workspace is left linked without tokens or with tokens but
    revoked. Other workspaces, of the same org included, keep their installations and
    links.

    Returns:
        The revoked link, or ``None`` if the workspace was not linked.
    """
    team = None if is_enterprise_install else team_id
    delete_all(conn, enterprise_id, team)
    if not enterprise_id and not team:
        return None
    return revoke_link(conn, enterprise_id, team)
