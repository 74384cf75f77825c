"""Checkpoints: the state a run resumes from, written after every model response.

A checkpoint is the run's message history. It grows by a step each time, so it is
stored in pieces (``HistoryEncoder``): messages that can no longer change are
appended to ``checkpoint_segments`` once, and only the newest few are rewritten in
the ``checkpoints`` row. What a checkpoint writes does not grow with the run. Every
piece carries its SHA-256, so a load detects corruption, and every read is filtered
by the caller's tenant, so another tenant's checkpoint is refused.

``save_checkpoint`` is the only writer; the metered model calls it in the
transaction that settles the response it saves (``core.metered_model``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from core.context import TenantContext
from core.db.engine import reads
from core.db.schema import checkpoint_segments, checkpoints
from core.errors import CheckpointError

SETTLED_AFTER = 2
"""Messages at least this far from the end of a run's history are taken as final."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state a run resumes from."""

    run_id: str
    tenant_id: str
    step_index: int
    messages: bytes
    """The whole history, a JSON array of messages."""
    usage: dict[str, int] = field(default_factory=dict)
    segments: int = 0
    """How many stored segments hold the settled part of the history."""
    settled: int = 0
    """How many messages, from the first, those segments hold."""


@dataclass(frozen=True, slots=True)
class HistoryWrite:
    """What one checkpoint writes of its run's history."""

    segment: bytes | None
    """The messages settled since the checkpoint before, a JSON array, if any."""
    seq: int
    """The segment's sequence number."""
    replace: bool
    """The stored segments no longer match the history: delete them first."""
    total_segments: int
    """How many segments make up the settled history once this is written."""
    tail: bytes
    """The JSON array of the newest messages, which may still change."""


class HistoryEncoder:
    """Encodes a run's growing history for its checkpoints, each settled message once.

    Messages at least ``SETTLED_AFTER`` from the end are taken as final: they are
    encoded once and written once, as a new segment. The newest few are encoded and
    written afresh with every checkpoint. A history that no longer starts with the
    messages already written (or is shorter) replaces the stored segments.
    Concatenated, the segments and the tail are exactly
    ``ModelMessagesTypeAdapter.dump_json(messages)``.

    Args:
        stored: The messages a resumed run's checkpoint already holds in segments.
        segments: How many segments hold them.
    """

    def __init__(self, stored: Sequence[ModelMessage] = (), segments: int = 0) -> None:
        self._stored = list(stored)
        self._segments = segments

    def encode(self, messages: Sequence[ModelMessage]) -> HistoryWrite:
        """What the checkpoint of ``messages`` must write."""
        settled = max(0, len(messages) - SETTLED_AFTER)
        kept = common_prefix(self._stored, messages, settled)
        replace = kept < len(self._stored)
        if replace:
            kept, self._stored, self._segments = 0, [], 0
        fresh = list(messages[kept:settled])
        seq = self._segments
        if fresh:
            self._stored.extend(fresh)
            self._segments += 1
        return HistoryWrite(
            segment=ModelMessagesTypeAdapter.dump_json(fresh) if fresh else None,
            seq=seq,
            replace=replace,
            total_segments=self._segments,
            tail=ModelMessagesTypeAdapter.dump_json(list(messages[settled:])),
        )


def common_prefix(
    known: Sequence[ModelMessage], messages: Sequence[ModelMessage], limit: int
) -> int:
    """How many of ``messages``, at most ``limit``, start out as the very ``known`` objects."""
    kept = 0
    while kept < len(known) and kept < limit and known[kept] is messages[kept]:
        kept += 1
    return kept


def joined(arrays: Sequence[bytes]) -> bytes:
    """JSON arrays joined into one: ``[1,2]`` and ``[3]`` make ``[1,2,3]``."""
    items = [array[1:-1] for array in arrays if array != b"[]"]
    return b"[" + b",".join(items) + b"]"


def save_checkpoint(
    conn: Connection, ctx: TenantContext, *, step_index: int, history: HistoryWrite,
    usage: dict[str, int],
) -> None:
    """Write the run's checkpoint: a new segment, if any, and the checkpoint row.

    The row is replaced only if it is the same tenant's, so a run id reused by
    another tenant cannot overwrite its checkpoint.
    """
    now = datetime.now(UTC)
    if history.replace:
        conn.execute(delete(checkpoint_segments).where(
            checkpoint_segments.c.run_id == ctx.run_id,
            checkpoint_segments.c.tenant_id == ctx.tenant_id,
        ))
    if history.segment is not None:
        conn.execute(_ADD_SEGMENT, {
            "run_id": ctx.run_id, "seq": history.seq, "tenant_id": ctx.tenant_id,
            "messages": history.segment.decode(),
            "digest": hashlib.sha256(history.segment).hexdigest(), "created_at": now,
        })
    conn.execute(_upsert(conn.dialect.name), {
        "run_id": ctx.run_id, "tenant_id": ctx.tenant_id, "step_index": step_index,
        "messages": history.tail.decode(), "usage": usage,
        "digest": hashlib.sha256(history.tail).hexdigest(), "updated_at": now,
        "segments": history.total_segments,
    })


_ADD_SEGMENT = checkpoint_segments.insert()
_CHECKPOINT_FIELDS = (
    "tenant_id", "step_index", "messages", "usage", "digest", "updated_at", "segments",
)


@cache
def _upsert(dialect: str) -> Insert:
    """The checkpoint upsert, built once per dialect (it runs after every model response)."""
    insert = sqlite.insert(checkpoints) if dialect == "sqlite" else postgresql.insert(checkpoints)
    return insert.on_conflict_do_update(
        index_elements=["run_id"],
        set_={name: insert.excluded[name] for name in _CHECKPOINT_FIELDS},
        where=checkpoints.c.tenant_id == insert.excluded.tenant_id,
    )


@reads
def load_checkpoint(conn: Connection, ctx: TenantContext, run_id: str) -> Checkpoint | None:
    """The run's checkpoint, or ``None`` if it never reached one.

    Raises:
        CheckpointError: the checkpoint belongs to another tenant, or is corrupt
            (a digest does not match, a segment is missing, or it is not JSON).
    """
    row = conn.execute(select(checkpoints).where(checkpoints.c.run_id == run_id)).first()
    if row is None:
        return None
    if row.tenant_id != ctx.tenant_id:
        raise CheckpointError(f"checkpoint of run {run_id!r} belongs to another tenant; refused")
    stored = conn.execute(
        select(checkpoint_segments.c.messages, checkpoint_segments.c.digest)
        .where(
            checkpoint_segments.c.tenant_id == ctx.tenant_id,
            checkpoint_segments.c.run_id == run_id,
            checkpoint_segments.c.seq < row.segments,
        )
        .order_by(checkpoint_segments.c.seq)
    ).all()
    if len(stored) != row.segments:
        raise CheckpointError(f"checkpoint of run {run_id!r} is corrupt (segment missing)")
    parts = [(str(s.messages).encode(), str(s.digest)) for s in stored]
    parts.append((str(row.messages).encode(), str(row.digest)))
    counts = [_message_count(run_id, data, digest) for data, digest in parts]
    usage: dict[str, Any] = row.usage if isinstance(row.usage, dict) else {}
    return Checkpoint(
        run_id=run_id,
        tenant_id=row.tenant_id,
        step_index=int(row.step_index),
        messages=joined([data for data, _ in parts]),
        usage={k: int(v) for k, v in usage.items()},
        segments=int(row.segments),
        settled=sum(counts[:-1]),
    )


def _message_count(run_id: str, data: bytes, digest: str) -> int:
    """How many messages one stored piece holds, once its digest and form are checked."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise CheckpointError(f"checkpoint of run {run_id!r} is corrupt (digest mismatch)")
    try:
        messages = json.loads(data)
    except ValueError:
        raise CheckpointError(f"checkpoint of run {run_id!r} is corrupt (not JSON)") from None
    if not isinstance(messages, list):
        raise CheckpointError(
            f"checkpoint of run {run_id!r} is corrupt (not a list of messages)"
        )
    return len(messages)
