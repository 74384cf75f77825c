"""Reading the audit tables (heads, checkpoints, events in batches); storing checkpoints.

Events are read in keyset batches, each in its own short read transaction, so that
checking a long log never holds a snapshot (or a connection) for long. That is safe
because an event never changes once its head is committed: batches read at
different times still agree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from core.audit.events import AuditError
from core.audit.tables import audit_checkpoints, audit_events, audit_heads
from core.audit.verify import EventRow, LogChecker, StoredCheckpoint
from core.db.engine import Database, dialect_insert, reads
from core.db.schema import as_utc
from core.merkle import CompactRange

BATCH_SIZE = 50_000

_EVENT_COLUMNS = (
    audit_events.c.seq,
    audit_events.c.run_id,
    audit_events.c.event,
    audit_events.c.time,
    audit_events.c.fields,
    audit_events.c.leaf_hash,
)


def encode_range(tree: CompactRange) -> str:
    """The stored form of a compact range: a JSON list of hex hashes."""
    return json.dumps([item.hex() for item in tree.hashes])


def decode_range(size: int, text: str) -> CompactRange:
    """Resume a compact range from its stored form.

    Raises:
        AuditError: The stored state is not a valid range of ``size`` leaves.
    """
    try:
        hashes = [bytes.fromhex(item) for item in json.loads(text)]
        return CompactRange(size, hashes)
    except (ValueError, TypeError) as error:
        raise AuditError(f"stored tree state of size {size} is corrupt: {error}") from None


@reads
def read_head(conn: Connection, tenant_id: str) -> CompactRange | None:
    """The tenant's current tree state, or ``None`` before its first event."""
    row = conn.execute(
        select(audit_heads.c.size, audit_heads.c.compact_range).where(
            audit_heads.c.tenant_id == tenant_id
        )
    ).first()
    return None if row is None else decode_range(int(row.size), row.compact_range)


_CHECKPOINT_COLUMNS = (
    audit_checkpoints.c.size,
    audit_checkpoints.c.root,
    audit_checkpoints.c.note,
    audit_checkpoints.c.created_at,
)


def _checkpoint(tenant_id: str, row: Any) -> StoredCheckpoint:
    """A row of ``_CHECKPOINT_COLUMNS`` as a ``StoredCheckpoint``."""
    iso = as_utc(row.created_at).isoformat().replace("+00:00", "Z")
    return StoredCheckpoint(tenant_id, int(row.size), row.root, row.note, iso)


def store_checkpoint(
    conn: Connection, tenant_id: str, head: CompactRange, note: str
) -> StoredCheckpoint:
    """Store the signed checkpoint of ``head`` with its tree state; return it as stored."""
    conn.execute(
        dialect_insert(conn, audit_checkpoints)
        .values(tenant_id=tenant_id, size=head.size, root=head.root().hex(), note=note,
                compact_range=encode_range(head), created_at=datetime.now(UTC))
        .on_conflict_do_nothing()
    )
    row = conn.execute(
        select(*_CHECKPOINT_COLUMNS).where(audit_checkpoints.c.tenant_id == tenant_id,
                                           audit_checkpoints.c.size == head.size)
    ).one()
    return _checkpoint(tenant_id, row)


@reads
def read_checkpoints(conn: Connection, tenant_id: str) -> list[StoredCheckpoint]:
    """Every stored checkpoint of the tenant, smallest first."""
    rows = conn.execute(
        select(*_CHECKPOINT_COLUMNS)
        .where(audit_checkpoints.c.tenant_id == tenant_id)
        .order_by(audit_checkpoints.c.size)
    )
    return [_checkpoint(tenant_id, row) for row in rows]


@reads
def read_latest_checkpoint(
    conn: Connection, tenant_id: str
) -> tuple[StoredCheckpoint, str] | None:
    """The newest checkpoint and the stored tree state it signed."""
    row = conn.execute(
        select(*_CHECKPOINT_COLUMNS, audit_checkpoints.c.compact_range)
        .where(audit_checkpoints.c.tenant_id == tenant_id)
        .order_by(audit_checkpoints.c.size.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return _checkpoint(tenant_id, row), str(row.compact_range)


async def event_batches(
    db: Database, tenant_id: str, *, after: int = 0, upto: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> AsyncGenerator[list[EventRow], None]:
    """Yield the tenant's events with ``after < seq (<= upto)`` in order, in batches."""
    async for rows in _windows(db, tenant_id, _EVENT_COLUMNS, after, upto, batch_size):
        yield [(seq, run_id, event, time, fields, leaf)
               for seq, run_id, event, time, fields, leaf in rows]


async def _windows(
    db: Database, tenant_id: str, columns: Sequence[Any], after: int, upto: int | None,
    batch_size: int,
) -> AsyncGenerator[Sequence[Any], None]:
    """Yield rows in windows of ``batch_size`` sequence numbers, skipping over gaps.

    A window bounded on both sides is read from the primary key alone, whatever
    the planner believes about the table; ``seq > x ORDER BY seq LIMIT n`` can be
    planned as a sort of every later row (it is, on PostgreSQL, right after a bulk
    load), which makes reading a long log quadratic. Sequence numbers are dense,
    so a window is full unless events are missing, and only then is the next
    stored one looked up.
    """
    last = after
    while upto is None or last < upto:
        high = last + batch_size if upto is None else min(last + batch_size, upto)
        rows, following = await db.run(_window, tenant_id, columns, last, high, upto)
        if rows:
            yield rows
        if len(rows) < high - last:
            if following is None:
                return
            last = int(following) - 1
        else:
            last = high


@reads
def _window(
    conn: Connection, tenant_id: str, columns: Sequence[Any], last: int, high: int,
    upto: int | None,
) -> tuple[Sequence[Any], int | None]:
    """The rows with ``last < seq <= high``, and the next stored seq if some are missing."""
    seq = audit_events.c.seq
    window = (audit_events.c.tenant_id == tenant_id, seq > last, seq <= high)
    rows = conn.execute(select(*columns).where(*window).order_by(seq)).all()
    if len(rows) == high - last:
        return rows, None
    beyond = select(func.min(seq)).where(audit_events.c.tenant_id == tenant_id, seq > high)
    if upto is not None:
        beyond = beyond.where(seq <= upto)
    return rows, conn.scalar(beyond)


async def feed_batches(
    checker: LogChecker, batches: AsyncGenerator[list[EventRow], None]
) -> bool:
    """Feed every batch to ``checker``, hashing one in a thread while the next is read.

    Returns False as soon as the checker found a problem.
    """
    pending: asyncio.Future[bool] | None = None
    async with aclosing(batches):
        try:
            async for batch in batches:
                if pending is not None and not await pending:
                    return False
                pending = asyncio.ensure_future(asyncio.to_thread(checker.feed, batch))
            return True if pending is None else await pending
        finally:
            if pending is not None and not pending.done():
                await asyncio.wait([pending])


async def stored_leaves(db: Database, tenant_id: str, size: int) -> list[bytes]:
    """The stored leaf hashes of events ``1..size`` in order, as stored (not recomputed)."""
    columns = (audit_events.c.leaf_hash,)
    return [
        bytes.fromhex(row.leaf_hash)
        async for rows in _windows(db, tenant_id, columns, 0, size, BATCH_SIZE * 4)
        for row in rows
    ]
