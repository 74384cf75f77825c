"""Creating, listing, revoking and verifying API keys (transactions on a connection)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, RowMapping

from core.api_keys.tables import api_keys
from core.authz import check_principal
from core.db.engine import reads
from core.db.schema import as_utc
from core.errors import InvalidInput, NotFound, TenantryError
from core.tenants import get_tenant

PREFIX = "tnt_"
_KEY = re.compile(r"^tnt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TOUCH_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key: a busy key is not a hot row."""

Refusal = Literal["malformed", "unknown", "revoked", "expired", "tenant_suspended"]


class KeyRefused(TenantryError):
    """A presented key does not authorise anything; ``reason`` says why.

    ``malformed``, ``unknown``, ``revoked``, ``expired`` are the caller's to fix
    (401); ``tenant_suspended`` is the key's tenant's state (403). ``key`` is the
    stored key when one was found (revoked, expired, suspended), so its use can be
    audited in its tenant's log.
    """

    def __init__(self, reason: Refusal, key: ApiKey | None = None) -> None:
        super().__init__(f"API key refused: {reason.replace('_', ' ')}")
        self.reason: Refusal = reason
        self.key = key


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, as ``list`` shows it and ``verify`` returns it (never the secret)."""

    id: str
    tenant_id: str
    principal_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def prefix(self) -> str:
        """How people recognise the key: the part of it before its secret."""
        return f"{PREFIX}{self.id}"

    @classmethod
    def of(cls, row: RowMapping) -> ApiKey:
        created = as_utc(row["created_at"])
        assert created is not None
        return cls(row["id"], row["tenant_id"], row["principal_id"], row["created_by"],
                   created, as_utc(row["expires_at"]), as_utc(row["last_used_at"]),
                   as_utc(row["revoked_at"]))


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: ``secret`` is the whole key, shown once and stored nowhere."""

    key: ApiKey
    secret: str


def _hash(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def create_key(conn: Connection, tenant_id: str, principal_id: str, *, by: str,
               now: datetime, expires_in: timedelta | None = None) -> IssuedKey:
    """Issue a key for ``principal_id`` in ``tenant_id``.

    Raises:
        NotFound: no such tenant.
        InvalidInput: a malformed principal id, or an expiry that is not in the future.
    """
    get_tenant(conn, tenant_id)
    check_principal(principal_id)
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("an API key's expiry must be in the future")
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    whole = f"{PREFIX}{key_id}_{secret}"
    key = ApiKey(key_id, tenant_id, principal_id, by, now,
                 None if expires_in is None else now + expires_in, None, None)
    conn.execute(api_keys.insert().values(
        id=key.id, tenant_id=tenant_id, principal_id=principal_id, key_hash=_hash(whole),
        created_by=by, created_at=now, expires_at=key.expires_at))
    return IssuedKey(key, whole)


def list_keys(conn: Connection, tenant_id: str) -> list[ApiKey]:
    """The tenant's keys, newest first, revoked ones included."""
    rows = conn.execute(select(api_keys).where(api_keys.c.tenant_id == tenant_id)
                        .order_by(api_keys.c.created_at.desc(), api_keys.c.id)).mappings()
    return [ApiKey.of(row) for row in rows]


def _key_id(prefix_or_id: str) -> str:
    return prefix_or_id.removeprefix(PREFIX).split("_", 1)[0]


def revoke_key(conn: Connection, tenant_id: str, prefix_or_id: str, *,
               now: datetime) -> tuple[ApiKey, bool]:
    """Revoke one of the tenant's keys; it stops working on the next request. Returns
    the key and whether this call revoked it (``False``: it already was).

    Raises:
        NotFound: the tenant has no such key (another tenant's key is not found either).
    """
    key_id = _key_id(prefix_or_id)
    changed = conn.execute(update(api_keys)
                           .where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id,
                                  api_keys.c.revoked_at.is_(None))
                           .values(revoked_at=now)).rowcount == 1
    row = conn.execute(select(api_keys).where(api_keys.c.tenant_id == tenant_id,
                                              api_keys.c.id == key_id)).mappings().first()
    if row is None:
        raise NotFound(f"tenant {tenant_id!r} has no API key {prefix_or_id!r}")
    return ApiKey.of(row), changed


@reads
def verify(conn: Connection, presented: str, *, now: datetime) -> ApiKey:
    """The key ``presented`` stands for, if it authorises anything now (a read only:
    ``touch`` notes its use).

    Raises:
        KeyRefused: malformed, unknown, revoked, expired, or its tenant is suspended.
    """
    match = _KEY.match(presented)
    if match is None:
        raise KeyRefused("malformed")
    row = conn.execute(select(api_keys).where(api_keys.c.id == match[1])).mappings().first()
    if row is None or not hmac.compare_digest(row["key_hash"], _hash(presented)):
        raise KeyRefused("unknown")
    key = ApiKey.of(row)
    if key.revoked_at is not None:
        raise KeyRefused("revoked", key)
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyRefused("expired", key)
    if get_tenant(conn, key.tenant_id).status != "active":
        raise KeyRefused("tenant_suspended", key)
    return key


def touch(conn: Connection, key: ApiKey, *, now: datetime) -> None:
    """Note that ``key`` was used at ``now``."""
    conn.execute(update(api_keys).where(api_keys.c.tenant_id == key.tenant_id,
                                        api_keys.c.id == key.id).values(last_used_at=now))


def purge_keys(conn: Connection, tenant_id: str) -> int:
    """Delete every key of a tenant (a purge); how many."""
    return int(conn.execute(api_keys.delete().where(api_keys.c.tenant_id == tenant_id))
               .rowcount)
