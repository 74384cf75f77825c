"""``Idempotency-Key``: a retried ``POST /v1/runs`` finds the run its first try started.

A key is the tenant's own: it is stored with the SHA-256 of the request body and the
run it started, in the same transaction that records the run as ``queued``, so two
tries racing each other start one run. The same key with another body is a conflict,
never a second run. A key is kept for ``KEPT`` (24 hours, as payment APIs keep theirs):
long enough for any client's retries, after which the key is free again and its row is
deleted by ``forget_expired``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, PrimaryKeyConstraint, String, Table, delete, select
from sqlalchemy.engine import Connection

from core.db.engine import reads
from core.db.schema import UTCDateTime, metadata

api_idempotency = Table(
    "api_idempotency",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "key", name="pk_api_idempotency"),
)


KEPT = timedelta(hours=24)
"""How long a key finds the run it started."""


def digest(body: bytes) -> str:
    """What a key is stored with: the request exactly as sent."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Remembered:
    """What an earlier request with the same key started, and what it sent."""

    run_id: str
    digest: str


@reads
def remembered(conn: Connection, tenant_id: str, key: str, *,
               now: datetime) -> Remembered | None:
    """The run an earlier request with ``key`` started in the tenant within ``KEPT``."""
    t = api_idempotency.c
    row = conn.execute(select(t.run_id, t.digest).where(
        t.tenant_id == tenant_id, t.key == key, t.created_at > now - KEPT)).first()
    return None if row is None else Remembered(row.run_id, row.digest)


def remember(conn: Connection, tenant_id: str, key: str, body_digest: str, run_id: str, *,
             now: datetime) -> None:
    """Store ``key`` for ``run_id`` (over its expired row, if one is left); a second
    insert of a key still kept raises IntegrityError."""
    t = api_idempotency.c
    conn.execute(delete(api_idempotency).where(t.tenant_id == tenant_id, t.key == key,
                                               t.created_at <= now - KEPT))
    conn.execute(api_idempotency.insert().values(tenant_id=tenant_id, key=key,
                                                 digest=body_digest, run_id=run_id,
                                                 created_at=now))


def forget_expired(conn: Connection, *, now: datetime) -> int:
    """Delete every tenant's keys older than ``KEPT`` (housekeeping, no tenant's
    content read); how many."""
    gone = conn.execute(delete(api_idempotency).where(
        api_idempotency.c.created_at <= now - KEPT))
    return int(gone.rowcount)


def purge_idempotency(conn: Connection, tenant_id: str) -> dict[str, int]:
    """Delete the tenant's stored keys, in a tenant purge's transaction.

    A key is the tenant's own words (an order number, say), so it goes with the
    tenant's other content; the table is the API's, so the purge reaches it through
    its ``also`` list rather than from the core.
    """
    gone = conn.execute(delete(api_idempotency).where(api_idempotency.c.tenant_id == tenant_id))
    return {"api_idempotency": gone.rowcount}
