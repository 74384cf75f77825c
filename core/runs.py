"""Run records, checkpoints and the tool-effect ledger.

A run's durable state is its row in ``runs`` (status, outcome), its latest
checkpoint (messages, usage, step index), and one effect row per tool call keyed
``(run_id, step_id)``. Every read is filtered by the caller's tenant, so a run id
from another tenant is simply not found, and a checkpoint is refused.

A checkpoint's history grows by a step each time, so it is stored in pieces
(``HistoryEncoder``): the messages that can no longer change are appended to
``checkpoint_segments`` once, and only the newest few are rewritten with every
checkpoint. What a checkpoint writes no longer grows with the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any, Literal

from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.context import TenantContext
from core.db.engine import Database
from core.db.prepared import Prepared
from core.db.schema import checkpoint_segments, checkpoints, runs, tool_effects
from core.errors import CheckpointError, NotFound
from core.journal import RunJournal

RunStatus = Literal["queued", "running", "halted", "completed", "failed", "refused"]
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "refused"})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored."""

    id: str
    tenant_id: str
    principal_id: str
    principal_kind: str
    initiator: str
    correlation_id: str | None
    conversation_id: str | None
    model: str
    prompt: str
    status: str
    answer: str | None
    detail: dict[str, Any]
    input_tokens: int
    output_tokens: int
    tool_calls: int
    cost_microcents: int
    attempts: int
    created_at: datetime


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


SETTLED_AFTER = 2
"""Messages at least this far from the end of a run's history are taken as final."""


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


def _record(row: Any) -> RunRecord:
    return RunRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        principal_id=row.principal_id,
        principal_kind=row.principal_kind,
        initiator=row.initiator,
        correlation_id=row.correlation_id,
        conversation_id=row.conversation_id,
        model=row.model,
        prompt=row.prompt,
        status=row.status,
        answer=row.answer,
        detail=dict(row.detail or {}),
        input_tokens=int(row.input_tokens),
        output_tokens=int(row.output_tokens),
        tool_calls=int(row.tool_calls),
        cost_microcents=int(row.cost_microcents),
        attempts=int(row.attempts),
        created_at=row.created_at,
    )


_CHECKPOINT_FIELDS = (
    "tenant_id", "step_index", "messages", "usage", "digest", "updated_at", "segments",
)
_RECORD_EFFECT = Prepared(tool_effects.insert())
_ADD_SEGMENT = Prepared(checkpoint_segments.insert())
_DROP_SEGMENTS = Prepared(
    delete(checkpoint_segments).where(
        checkpoint_segments.c.run_id == bindparam("run_id"),
        checkpoint_segments.c.tenant_id == bindparam("tenant_id"),
    )
)
_CREATE = Prepared(runs.insert())


@cache
def _save_checkpoint(is_sqlite: bool) -> Prepared:
    """The checkpoint upsert, built once per dialect (it runs after every model response).

    The update applies only to the same tenant's row, so a run id reused by another
    tenant cannot overwrite its checkpoint.
    """
    insert = sqlite.insert(checkpoints) if is_sqlite else postgresql.insert(checkpoints)
    return Prepared(insert.on_conflict_do_update(
        index_elements=["run_id"],
        set_={name: insert.excluded[name] for name in _CHECKPOINT_FIELDS},
        where=checkpoints.c.tenant_id == insert.excluded.tenant_id,
    ))


class RunStore:
    """Persistence of runs, their checkpoints and their tool effects."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        ctx: TenantContext,
        *,
        prompt: str,
        model: str,
        status: RunStatus = "running",
        conversation_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Record a new run of the context's tenant."""
        return await self.db.run(
            lambda conn: self.create_in(
                conn, ctx, prompt=prompt, model=model, status=status,
                conversation_id=conversation_id, detail=detail,
            )
        )

    def create_in(
        self,
        conn: Connection,
        ctx: TenantContext,
        *,
        prompt: str,
        model: str,
        status: RunStatus = "running",
        conversation_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> RunRecord:
        """``create`` inside the caller's transaction."""
        now = datetime.now(UTC)
        row = {
            "id": ctx.run_id,
            "tenant_id": ctx.tenant_id,
            "principal_id": ctx.principal_id,
            "principal_kind": ctx.principal_kind,
            "initiator": ctx.audit.initiator,
            "correlation_id": ctx.audit.correlation_id,
            "conversation_id": conversation_id,
            "model": model,
            "prompt": prompt,
            "status": status,
            "answer": None,
            "detail": detail or {},
            "input_tokens": 0,
            "output_tokens": 0,
            "tool_calls": 0,
            "cost_microcents": 0,
            "attempts": 1,
            "created_at": now,
            "updated_at": now,
        }
        _CREATE.execute(conn, row)
        return _record(SimpleNamespace(**row))

    async def get(self, tenant_id: str, run_id: str) -> RunRecord:
        """The run ``run_id`` of ``tenant_id``; another tenant's run is not found."""
        return await self.db.run(lambda conn: self.get_in(conn, tenant_id, run_id), readonly=True)

    def get_in(self, conn: Connection, tenant_id: str, run_id: str) -> RunRecord:
        """``get`` inside the caller's transaction."""
        row = conn.execute(
            select(runs).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)
        ).first()
        if row is None:
            raise NotFound(f"no run {run_id!r} in tenant {tenant_id!r}")
        return _record(row)

    async def find_tenant(self, run_id: str) -> str:
        """Which tenant owns ``run_id``: for operators resuming by id from the CLI."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(runs.c.tenant_id).where(runs.c.id == run_id))).first()
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return str(row[0])

    async def recent(self, tenant_id: str, limit: int = 20,
                     principal_id: str | None = None) -> list[RunRecord]:
        """The tenant's newest runs, optionally of one principal."""
        query = select(runs).where(runs.c.tenant_id == tenant_id)
        if principal_id is not None:
            query = query.where(runs.c.principal_id == principal_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(runs.c.id.desc()).limit(limit))).all()
        return [_record(row) for row in rows]

    async def unfinished(self, tenant_id: str | None = None) -> list[RunRecord]:
        """Runs left ``queued`` or ``running``: a crash interrupted them."""
        query = select(runs).where(runs.c.status.in_(("queued", "running")))
        if tenant_id is not None:
            query = query.where(runs.c.tenant_id == tenant_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(runs.c.id))).all()
        return [_record(row) for row in rows]

    def update_in(
        self,
        conn: Connection,
        ctx: TenantContext,
        *,
        status: RunStatus,
        answer: str | None = None,
        detail: dict[str, Any] | None = None,
        totals: dict[str, int] | None = None,
        new_attempt: bool = False,
    ) -> None:
        """Move the run to ``status`` with its outcome, inside the caller's transaction."""
        values: dict[str, Any] = {"status": status, "updated_at": datetime.now(UTC)}
        if answer is not None:
            values["answer"] = answer
        if detail is not None:
            values["detail"] = detail
        if totals:
            values.update(totals)
        if new_attempt:
            values["attempts"] = runs.c.attempts + 1
        conn.execute(
            update(runs)
            .where(runs.c.tenant_id == ctx.tenant_id, runs.c.id == ctx.run_id)
            .values(**values)
        )

    async def claim_resume(self, ctx: TenantContext) -> bool:
        """Move a halted run to ``running``; ``False`` if someone else resumed it first.

        One conditional UPDATE, so two presses of a Resume button (in one process or
        several) resume the run once.
        """
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(runs)
                .where(runs.c.tenant_id == ctx.tenant_id, runs.c.id == ctx.run_id,
                       runs.c.status == "halted")
                .values(status="running", updated_at=datetime.now(UTC))
            )
        return result.rowcount == 1

    def save_checkpoint(
        self, ctx: TenantContext, journal: RunJournal, *, step_index: int, history: HistoryWrite,
        usage: dict[str, int],
    ) -> None:
        """Write the run's checkpoint in the run's next transaction (``core.journal``).

        A new segment is appended and the checkpoint row replaced, together. The
        digests let a later load detect corruption. Until that transaction commits,
        a resume starts from the checkpoint before, where the response this one ends
        with is still a reservation: charged in full as retried work, and asked again.
        """
        now = datetime.now(UTC)
        head = {
            "run_id": ctx.run_id,
            "tenant_id": ctx.tenant_id,
            "step_index": step_index,
            "messages": history.tail.decode(),
            "usage": usage,
            "digest": hashlib.sha256(history.tail).hexdigest(),
            "updated_at": now,
            "segments": history.total_segments,
        }
        segment = None if history.segment is None else {
            "run_id": ctx.run_id,
            "seq": history.seq,
            "tenant_id": ctx.tenant_id,
            "messages": history.segment.decode(),
            "digest": hashlib.sha256(history.segment).hexdigest(),
            "created_at": now,
        }
        save = _save_checkpoint(self.db.is_sqlite)

        def write(conn: Connection) -> None:
            if history.replace:
                _DROP_SEGMENTS.queue(conn, {"run_id": ctx.run_id, "tenant_id": ctx.tenant_id})
            if segment is not None:
                _ADD_SEGMENT.queue(conn, segment)
            save.queue(conn, head)

        journal.defer(write)

    async def load_checkpoint(self, ctx: TenantContext, run_id: str) -> Checkpoint | None:
        """The run's checkpoint, or ``None`` if it never reached one.

        Raises:
            CheckpointError: the checkpoint belongs to another tenant, or is corrupt
                (a digest does not match, a segment is missing, or it is not JSON).
        """
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(checkpoints).where(checkpoints.c.run_id == run_id))
            ).first()
            if row is None:
                return None
            if row.tenant_id != ctx.tenant_id:
                raise CheckpointError(
                    f"checkpoint of run {run_id!r} belongs to another tenant; refused"
                )
            stored = (
                await conn.execute(
                    select(checkpoint_segments.c.messages, checkpoint_segments.c.digest)
                    .where(
                        checkpoint_segments.c.tenant_id == ctx.tenant_id,
                        checkpoint_segments.c.run_id == run_id,
                        checkpoint_segments.c.seq < row.segments,
                    )
                    .order_by(checkpoint_segments.c.seq)
                )
            ).all()
        if len(stored) != row.segments:
            raise CheckpointError(f"checkpoint of run {run_id!r} is corrupt (segment missing)")
        parts = [(str(s.messages).encode(), str(s.digest)) for s in stored]
        parts.append((str(row.messages).encode(), str(row.digest)))
        settled = 0
        for index, (data, digest) in enumerate(parts):
            if hashlib.sha256(data).hexdigest() != digest:
                raise CheckpointError(
                    f"checkpoint of run {run_id!r} is corrupt (digest mismatch)"
                )
            try:
                messages = json.loads(data)
            except ValueError:
                raise CheckpointError(
                    f"checkpoint of run {run_id!r} is corrupt (not JSON)"
                ) from None
            if not isinstance(messages, list):
                raise CheckpointError(
                    f"checkpoint of run {run_id!r} is corrupt (not a list of messages)"
                )
            if index < len(stored):
                settled += len(messages)
        usage = row.usage if isinstance(row.usage, dict) else {}
        return Checkpoint(
            run_id=run_id,
            tenant_id=row.tenant_id,
            step_index=int(row.step_index),
            messages=joined([data for data, _ in parts]),
            usage={k: int(v) for k, v in usage.items()},
            segments=int(row.segments),
            settled=settled,
        )

    async def effects(self, ctx: TenantContext) -> dict[str, str]:
        """The stored results of the run's tool calls so far, by step id."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(tool_effects.c.step_id, tool_effects.c.result).where(
                        tool_effects.c.tenant_id == ctx.tenant_id,
                        tool_effects.c.run_id == ctx.run_id,
                    )
                )
            ).all()
        return {str(row.step_id): str(row.result) for row in rows}

    def record_effect_in(
        self, conn: Connection, ctx: TenantContext, *, step_id: str, capability: str,
        result: str,
    ) -> None:
        """Record a tool call's result inside the caller's transaction (not waited for)."""
        _RECORD_EFFECT.queue(
            conn,
            {
                "run_id": ctx.run_id,
                "step_id": step_id,
                "tenant_id": ctx.tenant_id,
                "capability": capability,
                "result": result,
                "created_at": datetime.now(UTC),
            },
        )
