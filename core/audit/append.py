"""Writing events: the head lock, the tree update, and group commit for ``record``.

An append claims sequence numbers with ``UPDATE audit_heads SET size = size + k ...
RETURNING``: on PostgreSQL that row lock is what queues concurrent appends of one
tenant, in any number of processes; SQLite already has a single writer. The head's
compact range is extended leaf by leaf and written back with the events, in the
same transaction, so the head and the events can only commit together.

Each transaction costs a few round trips and a commit whatever it holds, so
``record`` calls that wait for the same tenant are written together: the first to
get the tenant's lock writes every event queued by then, in one transaction. No
background task is involved; every caller either writes or finds its event written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from core.audit.events import AuditError, canonical_bytes, check_fields, utc_now
from core.audit.store import decode_range, encode_range
from core.audit.tables import audit_events, audit_heads
from core.db.engine import Database, dialect_insert
from core.merkle import CompactRange, leaf_hash

MAX_BATCH = 500

_MAX_LENGTH = {"tenant_id": 64, "run_id": 36, "event": 64}

# Built once: an append runs with every tool call.
_HEAD = audit_heads.c.tenant_id == bindparam("h_tenant")
_CLAIM = (
    update(audit_heads).where(_HEAD).values(size=audit_heads.c.size + bindparam("h_count"))
    .returning(audit_heads.c.size, audit_heads.c.compact_range)
)
_MOVE_HEAD = update(audit_heads).where(_HEAD)
_INSERT_EVENTS = audit_events.insert()


@dataclass(frozen=True, slots=True)
class Entry:
    """An event checked and encoded, waiting for its sequence number."""

    event: str
    run_id: str | None
    fields_json: str


def prepare(tenant_id: str, event: str, fields: Mapping[str, Any], run_id: str | None) -> Entry:
    """Check an event before any lock is taken, so a bad one never fails a batch.

    Raises:
        AuditError: An id is malformed, or the fields hold a long string or non-JSON.
    """
    require_id("tenant_id", tenant_id)
    require_id("event", event)
    if run_id is not None:
        require_id("run_id", run_id)
    return Entry(event, run_id, check_fields(fields))


def require_id(name: str, value: object) -> None:
    """Refuse an id the columns cannot hold, before it reaches the database.

    Raises:
        AuditError: ``value`` is not a non-empty string that fits its column.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_LENGTH[name]:
        raise AuditError(f"{name} must be a non-empty string of at most "
                         f"{_MAX_LENGTH[name]} characters, got {value!r}")


def append_entries(conn: Connection, tenant_id: str, entries: Sequence[Entry]) -> list[int]:
    """Append ``entries`` in order in ``conn``'s transaction; their sequence numbers.

    The one way an event enters a log (see the module docstring).
    """
    tree = _claim(conn, tenant_id, len(entries))
    seqs, rows = _extend(tree, tenant_id, entries)
    conn.execute(_MOVE_HEAD, {"h_tenant": tenant_id, "compact_range": encode_range(tree),
                              "updated_at": datetime.now(UTC)})
    conn.execute(_INSERT_EVENTS, rows)
    return seqs


def _extend(
    tree: CompactRange, tenant_id: str, entries: Sequence[Entry]
) -> tuple[list[int], list[dict[str, Any]]]:
    """Add the entries' leaves to ``tree``; their sequence numbers and rows."""
    rows = []
    seqs = []
    for entry in entries:
        seq = tree.size + 1
        time = utc_now()
        leaf = leaf_hash(canonical_bytes(
            tenant_id, seq, entry.run_id, entry.event, time, entry.fields_json
        ))
        tree.append(leaf)
        seqs.append(seq)
        rows.append({"tenant_id": tenant_id, "seq": seq, "run_id": entry.run_id,
                     "event": entry.event, "time": time, "fields": entry.fields_json,
                     "leaf_hash": leaf.hex()})
    return seqs, rows


def _claim(conn: Connection, tenant_id: str, count: int) -> CompactRange:
    """Lock the tenant's head, counting ``count`` new events in it; return the prior tree."""
    claim = {"h_tenant": tenant_id, "h_count": count}
    row = conn.execute(_CLAIM, claim).first()
    if row is None:
        conn.execute(
            dialect_insert(conn, audit_heads)
            .values(tenant_id=tenant_id, size=0, compact_range="[]", updated_at=datetime.now(UTC))
            .on_conflict_do_nothing()
        )
        row = conn.execute(_CLAIM, claim).first()
    if row is None:
        raise AuditError(f"the audit head of tenant {tenant_id!r} vanished while created")
    size, compact_range = row
    return decode_range(int(size) - count, compact_range)


@dataclass(slots=True)
class _Waiting:
    entry: Entry
    done: asyncio.Future[int]


@dataclass
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: list[_Waiting] = field(default_factory=list)
    callers: int = 0


class GroupCommit:
    """Writes concurrent ``record`` calls of one tenant together, one transaction a batch."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queues: dict[str, _Queue] = {}

    async def record(self, tenant_id: str, entry: Entry) -> int:
        """Write ``entry`` (with whatever else is queued) and return its sequence number.

        If the batch's transaction fails, every caller in it gets the error; a
        caller cancelled before its batch started is taken out of the queue.
        """
        queue = self._queues.setdefault(tenant_id, _Queue())
        waiting = _Waiting(entry, asyncio.get_running_loop().create_future())
        queue.waiting.append(waiting)
        queue.callers += 1
        try:
            async with queue.lock:
                if not waiting.done.done():
                    await self._flush(tenant_id, queue)
        except asyncio.CancelledError:
            if waiting in queue.waiting:
                queue.waiting.remove(waiting)
            waiting.done.add_done_callback(_consume)
            raise
        finally:
            queue.callers -= 1
            if not queue.callers:
                del self._queues[tenant_id]
        return await waiting.done

    async def _flush(self, tenant_id: str, queue: _Queue) -> None:
        batch = queue.waiting[:MAX_BATCH]
        del queue.waiting[:MAX_BATCH]
        entries = [w.entry for w in batch]
        try:
            seqs = await self._db.run(append_entries, tenant_id, entries)
        except BaseException as error:
            failure = error if isinstance(error, Exception) else AuditError(
                f"the transaction writing {len(batch)} audit events of {tenant_id!r} was "
                "interrupted; they may or may not have been recorded"
            )
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(failure)
                    waiting.done.add_done_callback(_consume)
            raise
        for waiting, seq in zip(batch, seqs, strict=True):
            waiting.done.set_result(seq)


def _consume(future: asyncio.Future[int]) -> None:
    """Mark a future's outcome as seen, for callers that stopped waiting for it."""
    if not future.cancelled():
        future.exception()
