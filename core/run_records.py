"""The transactions that open and close a run allocation, each with its audit event.

``start_run`` records a new run and ``run.started``; ``request_resume`` puts a
halted run back on the queue with ``run.resume_requested``; ``resume_run`` moves an
unfinished run back to ``running``, closes the reservations its last allocation left
open, records ``run.started`` (resumed) and reads what the run recorded so far;
``finish_run`` stores the outcome with the run's totals, keeps the exchange in the
conversation, and records ``run.completed`` or ``run.halted``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from core.audit import events
from core.audit.log import AuditLog, digest_with, salt
from core.budget.ledger import UsageSummary, abandon_open, run_rows, summary
from core.budget.replay import Replay
from core.checkpoints import Checkpoint, load_checkpoint
from core.context import TenantContext
from core.errors import BudgetExceeded, Conflict
from core.memory import append_turn
from core.runs import (
    FINAL_STATUSES,
    RESUME_REQUESTED,
    Lease,
    RunRecord,
    RunStatus,
    claim_run,
    create_run,
    get_run,
    requeue_halted,
    update_run,
)
from core.toolset import recorded_effects


def _started(ctx: TenantContext, model: str) -> dict[str, Any]:
    return {
        "principal": ctx.principal_id,
        "principal_kind": ctx.principal_kind,
        "initiator": ctx.audit.initiator,
        "correlation_id": ctx.audit.correlation_id,
        "model": model,
    }


def start_run(conn: Connection, ctx: TenantContext, audit: AuditLog, *, prompt: str, model: str,
              conversation_id: str | None, roles: Iterable[str], lease: Lease,
              detail: dict[str, Any] | None = None) -> bytes:
    """Record a new run, leased to this process, and ``run.started``; the tenant's salt."""
    create_run(conn, ctx, prompt=prompt, model=model, conversation_id=conversation_id,
               detail=detail, granted_roles=roles, lease=lease)
    tenant_salt = salt(conn, ctx.tenant_id)
    audit.append(conn, ctx.tenant_id, events.RUN_STARTED, _started(ctx, model) | {
        "prompt_digest": digest_with(tenant_salt, prompt), "scope": sorted(ctx.scope),
    }, run_id=ctx.run_id)
    return tenant_salt


def request_resume(conn: Connection, audit: AuditLog, tenant_id: str, run_id: str, *,
                   by: str) -> None:
    """Put a halted run back as ``queued`` for a worker to resume, and record who asked
    (``run.resume_requested``), in one transaction.

    Raises:
        NotFound: the run does not exist in this tenant.
        Conflict: the run is not halted any more (another press came first, or it was
            resumed already), or is a halted direct call, which is never resumed.
    """
    record = get_run(conn, tenant_id, run_id)
    direct = record.detail.get("direct")
    if direct is not None:
        raise Conflict(f"run {run_id} was a direct call of {direct} that halted and "
                       "answered its caller so; a direct call is not resumed: call again")
    if not requeue_halted(conn, tenant_id, run_id):
        raise Conflict("the run is being resumed already" if record.status == "halted"
                       else f"the run is {record.status}, not halted")
    halt = record.detail.get("halt") or {}
    audit.append(conn, tenant_id, events.RUN_RESUME_REQUESTED, {
        "principal": by, "ceiling": halt.get("ceiling"), "attempt": record.attempts + 1,
    }, run_id=run_id)


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a resumed allocation starts from."""

    record: RunRecord
    checkpoint: Checkpoint | None
    replay: Replay
    salt: bytes


def resume_run(conn: Connection, ctx: TenantContext, audit: AuditLog, lease: Lease) -> Resumed:
    """Take up an unfinished run again: leased, ``running``, orphans closed, ``run.started``.

    A ``queued`` run (recorded, never started) starts here for the first time and is
    audited as started, not as a second attempt. A halted run put back on the queue
    (``request_resume``) is ``queued`` too, but is a resumption: it is told apart by the
    ``RESUME_REQUESTED`` mark its requeueing wrote, not by a checkpoint (a run can halt
    before its first one) nor by its attempts (a first start counts one as well).

    A direct call that halted answered its caller with the halt, and has no model's
    work to go on with: it is not resumed (a ``running`` one is taken up here, to be
    ended by ``core.direct.end_interrupted``).

    Raises:
        NotFound: the run does not exist in this tenant.
        CheckpointError: its checkpoint is another tenant's or corrupt.
        Conflict: the run already ended, is a halted direct call, or another process
            holds its lease.
    """
    record = get_run(conn, ctx.tenant_id, ctx.run_id)
    if record.status in FINAL_STATUSES:
        raise Conflict(f"run {ctx.run_id} is {record.status}; only unfinished runs resume")
    direct = record.detail.get("direct")
    if direct is not None and record.status == "halted":
        raise Conflict(f"run {ctx.run_id} was a direct call of {direct} that halted and "
                       "answered its caller so; a direct call is not resumed: call again")
    if not claim_run(conn, ctx, lease, or_mine=True):
        raise Conflict(f"run {ctx.run_id} is being executed elsewhere; it was not resumed")
    checkpoint = load_checkpoint(conn, ctx, ctx.run_id)
    first = record.status == "queued" and RESUME_REQUESTED not in record.detail
    update_run(conn, ctx, status="running", new_attempt=not first)
    abandon_open(conn, ctx.tenant_id, ctx.run_id)
    tenant_salt = salt(conn, ctx.tenant_id)
    fields = _started(ctx, record.model)
    if first:
        fields |= {"prompt_digest": digest_with(tenant_salt, record.prompt),
                   "scope": sorted(ctx.scope)}
    else:
        fields |= {"resumed": True, "attempt": record.attempts + 1}
    audit.append(conn, ctx.tenant_id, events.RUN_STARTED, fields, run_id=ctx.run_id)
    replay = Replay.of(run_rows(conn, ctx.tenant_id, ctx.run_id), recorded_effects(conn, ctx))
    return Resumed(record, checkpoint, replay, tenant_salt)


@dataclass
class Ending:
    """How an allocation ended, as ``finish_run`` records it."""

    status: RunStatus
    answer: str | None = None
    halt: dict[str, Any] | None = None
    error: str | None = None
    refused: tuple[tuple[str, str], ...] = ()
    walltime_ms: int = 0
    direct: str | None = None
    """The capability a direct call asked for (``core.direct``), kept in the run's
    detail when it ends so that a resume never takes it for a model's run."""

    @classmethod
    def halted(cls, exc: BudgetExceeded) -> Ending:
        """A run stopped at a ceiling, with what the halt message shows."""
        return cls("halted", halt={"ceiling": exc.ceiling, "limit": exc.limit,
                                   "used": exc.used, "message": str(exc)})


def finish_run(conn: Connection, ctx: TenantContext, audit: AuditLog, ending: Ending,
               tenant_salt: bytes) -> UsageSummary:
    """Store the outcome and the run's totals, and record how it ended; the totals."""
    usage = summary(conn, ctx.tenant_id, ctx.run_id)
    if ending.answer is not None:
        record = get_run(conn, ctx.tenant_id, ctx.run_id)
        if record.conversation_id is not None:
            append_turn(conn, ctx, record.conversation_id, "user", record.prompt)
            append_turn(conn, ctx, record.conversation_id, "assistant", ending.answer)
    detail: dict[str, Any] = {}
    if ending.direct:
        detail["direct"] = ending.direct
    if ending.halt:
        detail["halt"] = ending.halt
    if ending.error:
        detail["error"] = ending.error
    if ending.refused:
        detail["refused_tools"] = [list(pair) for pair in ending.refused]
    update_run(conn, ctx, status=ending.status, answer=ending.answer, detail=detail, totals={
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "tool_calls": usage.tool_calls, "cost_microcents": usage.cost_microcents,
    }, release=True)
    fields: dict[str, Any] = {
        "outcome": ending.status,
        "tokens_in": usage.input_tokens,
        "tokens_out": usage.output_tokens,
        "tool_calls": usage.tool_calls,
        "tools_refused": len(ending.refused),
        "walltime_ms": ending.walltime_ms,
        "cost_microcents": usage.cost_microcents,
        "retried_cost_microcents": usage.retried_cost_microcents,
    }
    if ending.answer is not None:
        fields["answer_digest"] = digest_with(tenant_salt, ending.answer)
    if ending.halt:
        halt = {key: ending.halt[key] for key in ("ceiling", "limit", "used", "capability")
                if key in ending.halt}
        audit.append(conn, ctx.tenant_id, events.RUN_HALTED, fields | halt, run_id=ctx.run_id)
    else:
        audit.append(conn, ctx.tenant_id, events.RUN_COMPLETED, fields, run_id=ctx.run_id)
    return usage
