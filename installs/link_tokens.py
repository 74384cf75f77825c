"""Single-use tokens that name a tenant: Slack install links and Teams link codes.

An operator issues one for a tenant; whoever presents it first links their workspace
(or Entra tenant) to that tenant. A token is a Fernet token (encrypted and
authenticated under the deployment's ``Keyring``) holding ``{purpose, tenant, nonce,
expiry}``. The nonce is recorded in ``install_link_nonces`` and spent by one
conditional UPDATE, so a token works once, before it expires, and only while its
tenant exists and is active. Fernet under the keyring, rather than an HMAC key of its
own, means there is no second secret to configure or leak, the keyring never has to
reveal its keys, and tokens stay valid across a key rotation for as long as the old
key is kept.

The ``Purpose`` is sealed into the claim and stored with its nonce: an install link
never opens as a link code, nor a link code as an install link.

Every function runs inside the caller's transaction (``Database.run``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, String, Table, select, update
from sqlalchemy.engine import Connection

from core.context import check_id
from core.crypto import CryptoError, Keyring
from core.db.schema import UTCDateTime, metadata, tenants
from core.errors import InvalidInput, NotFound

MAX_TTL = timedelta(days=30)
_MAX_TOKEN = 1024


@dataclass(frozen=True, slots=True)
class Purpose:
    """What a sealed link is for; one sealed for a purpose never opens for another.

    Attributes:
        tag: Sealed into the claim and stored with its nonce.
        noun: What errors call such a link (``install link``).
    """

    tag: str
    noun: str


INSTALL_LINK = Purpose("tenantry/slack-install-link/v1", "install link")
TEAMS_LINK_CODE = Purpose("tenantry/teams-link-code/v1", "link code")
PURPOSE = INSTALL_LINK.tag

install_link_nonces = Table(
    "install_link_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
    Column("purpose", String(64), nullable=False, server_default=PURPOSE),
)


class InstallLinkError(InvalidInput):
    """An install link (or a Teams link code) cannot be used.

    Attributes:
        reason: ``bad_signature``, ``expired``, ``already_used``, ``unknown_link``,
            ``unknown_tenant`` or ``tenant_suspended``; for a link code also
            ``already_linked``. Stable, for the transport's wording and for logs.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Claim:
    tenant_id: str
    nonce: str
    expires_at: datetime


def _seal(keyring: Keyring, purpose: Purpose, claim: _Claim) -> str:
    body = {"p": purpose.tag, "t": claim.tenant_id, "n": claim.nonce,
            "e": int(claim.expires_at.timestamp())}
    return keyring.encrypt(json.dumps(body, separators=(",", ":"))).rstrip("=")


def _open(keyring: Keyring, purpose: Purpose, token: str) -> _Claim:
    """The claim in ``token``; the padding stripped for the URL is put back first."""
    forged = InstallLinkError(
        "bad_signature",
        f"this {purpose.noun} was not issued by this deployment (bad signature)",
    )
    if not token or len(token) > _MAX_TOKEN:
        raise forged
    try:
        body = json.loads(keyring.decrypt(token + "=" * (-len(token) % 4)))
    except (CryptoError, ValueError):
        raise forged from None
    if not isinstance(body, dict) or body.get("p") != purpose.tag:
        raise forged
    tenant_id, nonce, expiry = body.get("t"), body.get("n"), body.get("e")
    if not (isinstance(tenant_id, str) and isinstance(nonce, str) and type(expiry) is int):
        raise forged
    return _Claim(tenant_id, nonce, datetime.fromtimestamp(expiry, UTC))


def issue_sealed_link(
    conn: Connection, keyring: Keyring, purpose: Purpose, tenant_id: str, ttl: timedelta
) -> str:
    """A single-use token for ``purpose`` that names the tenant; its nonce is recorded.

    Args:
        keyring: Seals the claim; the server that redeems it needs the same keys.
        ttl: How long the token stays usable, at most ``MAX_TTL``.

    Raises:
        NotFound: no such tenant.
        InstallLinkError: the tenant is suspended.
        InvalidInput: a malformed tenant id or a TTL out of range.
    """
    check_id("tenant", tenant_id)
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidInput(f"{purpose.noun} ttl must be more than 0 and at most {MAX_TTL}")
    claim = _Claim(tenant_id, secrets.token_urlsafe(16), datetime.now(UTC) + ttl)
    status = conn.scalar(select(tenants.c.status).where(tenants.c.id == tenant_id))
    if status is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    if status != "active":
        raise InstallLinkError("tenant_suspended", f"tenant {tenant_id!r} is suspended")
    conn.execute(install_link_nonces.insert().values(
        nonce=claim.nonce, tenant_id=tenant_id, expires_at=claim.expires_at,
        purpose=purpose.tag,
    ))
    return _seal(keyring, purpose, claim)


def _why_not(conn: Connection, purpose: Purpose, claim: _Claim) -> InstallLinkError:
    """Name the first reason a link that failed its conditional statement is unusable."""
    status = conn.scalar(select(tenants.c.status).where(tenants.c.id == claim.tenant_id))
    if status is None:
        return InstallLinkError("unknown_tenant", f"no tenant {claim.tenant_id!r}")
    if status != "active":
        return InstallLinkError("tenant_suspended", f"tenant {claim.tenant_id!r} is suspended")
    row = conn.execute(select(install_link_nonces).where(
        install_link_nonces.c.nonce == claim.nonce,
        install_link_nonces.c.tenant_id == claim.tenant_id,
        install_link_nonces.c.purpose == purpose.tag,
    )).first()
    if row is None:
        return InstallLinkError("unknown_link", f"this {purpose.noun} is not known here")
    if row.used_at is not None:
        return InstallLinkError("already_used", f"this {purpose.noun} was already used")
    return InstallLinkError("expired", f"this {purpose.noun} has expired")


def verify_sealed_link(
    conn: Connection, keyring: Keyring, purpose: Purpose, token: str, *, spend: bool
) -> str:
    """The tenant a usable token of ``purpose`` names; ``spend`` uses it up, once.

    Spending is one conditional UPDATE: of concurrent attempts exactly one succeeds.

    Raises:
        InstallLinkError: the token is forged or of another purpose, expired, used, or
            its tenant unusable.
    """
    claim = _open(keyring, purpose, token)
    now = datetime.now(UTC)
    if claim.expires_at <= now:
        raise InstallLinkError("expired", f"this {purpose.noun} has expired")
    nonces = install_link_nonces.c
    usable = (
        nonces.nonce == claim.nonce,
        nonces.tenant_id == claim.tenant_id,
        nonces.purpose == purpose.tag,
        nonces.used_at.is_(None),
        nonces.expires_at > now,
        select(tenants.c.id)
        .where(tenants.c.id == claim.tenant_id, tenants.c.status == "active")
        .exists(),
    )
    if spend:
        spent = conn.execute(update(install_link_nonces).where(*usable).values(used_at=now))
        ok = spent.rowcount == 1
    else:
        ok = conn.scalar(select(nonces.nonce).where(*usable)) is not None
    if not ok:
        raise _why_not(conn, purpose, claim)
    return claim.tenant_id
