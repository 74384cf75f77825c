"""Run records: who asked what, in which tenant, and how it ended.

A run's durable state is its row in ``runs`` (status, outcome), its checkpoint
(``core.checkpoints``) and its ledgers (``core.budget.ledger``, the tool effects in
``core.toolset``). Every read is filtered by the caller's tenant, so a run id from
another tenant is simply not found. Every function runs inside the caller's
transaction (``Database.run``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from core.context import TenantContext
from core.db.engine import reads
from core.db.schema import runs
from core.errors import Conflict, NotFound

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
    granted_roles: tuple[str, ...] = ()
    """Roles the platform vouched for when the run was asked, kept for its resumes."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Who may execute a run, and until when: taken before a process executes it."""

    owner: str
    expires_at: datetime


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
        granted_roles=tuple(row.granted_roles or ()),
    )


def create_run(
    conn: Connection,
    ctx: TenantContext,
    *,
    prompt: str,
    model: str,
    status: RunStatus = "running",
    conversation_id: str | None = None,
    detail: dict[str, Any] | None = None,
    granted_roles: Iterable[str] = (),
    lease: Lease | None = None,
) -> RunRecord:
    """Record a new run of the context's tenant, leased to ``lease`` if it starts now.

    Raises:
        Conflict: a run with this id exists already. Ids are fresh UUIDs unless a caller
            derives them (a digest's firing), so this is that firing arriving again.
    """
    now = datetime.now(UTC)
    row: dict[str, Any] = {
        "id": ctx.run_id, "tenant_id": ctx.tenant_id, "principal_id": ctx.principal_id,
        "principal_kind": ctx.principal_kind, "initiator": ctx.audit.initiator,
        "correlation_id": ctx.audit.correlation_id, "conversation_id": conversation_id,
        "model": model, "prompt": prompt, "status": status, "answer": None,
        "detail": detail or {}, "input_tokens": 0, "output_tokens": 0, "tool_calls": 0,
        "cost_microcents": 0, "attempts": 1, "created_at": now, "updated_at": now,
        "granted_roles": sorted(granted_roles),
        "lease_owner": lease.owner if lease else None,
        "lease_expires_at": lease.expires_at if lease else None,
    }
    try:
        conn.execute(runs.insert().values(row))
    except IntegrityError:
        raise Conflict(f"run {ctx.run_id} exists already") from None
    return _record(SimpleNamespace(**row))


@reads
def get_run(conn: Connection, tenant_id: str, run_id: str) -> RunRecord:
    """The run ``run_id`` of ``tenant_id``; another tenant's run is not found."""
    row = conn.execute(
        select(runs).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)
    ).first()
    if row is None:
        raise NotFound(f"no run {run_id!r} in tenant {tenant_id!r}")
    return _record(row)


@reads
def find_run_tenant(conn: Connection, run_id: str) -> str:
    """Which tenant owns ``run_id``: for operators resuming by id from the CLI."""
    tenant_id = conn.scalar(select(runs.c.tenant_id).where(runs.c.id == run_id))
    if tenant_id is None:
        raise NotFound(f"no run {run_id!r}")
    return str(tenant_id)


@reads
def recent_runs(conn: Connection, tenant_id: str, limit: int = 20,
                principal_id: str | None = None) -> list[RunRecord]:
    """The tenant's newest runs, optionally of one principal."""
    query = select(runs).where(runs.c.tenant_id == tenant_id)
    if principal_id is not None:
        query = query.where(runs.c.principal_id == principal_id)
    return [_record(row) for row in conn.execute(query.order_by(runs.c.id.desc()).limit(limit))]


SESSION_PREFIX = "session:"
"""A session id (``X-Tenantry-Session``) is stored as the correlation id with this prefix,
so it cannot be confused with a chat thread's correlation."""


SESSION_HEADER = "X-Tenantry-Session"
"""The header an HTTP API or MCP request names its session in."""

SESSION_RULE = "1-100 letters, digits or . _ : -"
_SESSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def is_session_id(value: str) -> bool:
    """Whether ``value`` may name a session: every transport takes the same ids."""
    return _SESSION_ID.match(value) is not None


def session_correlation(session: str) -> str:
    """The correlation id runs of ``session`` are recorded with."""
    return SESSION_PREFIX + session


@reads
def session_runs(conn: Connection, tenant_id: str, session: str,
                 limit: int = 100) -> list[RunRecord]:
    """The tenant's runs of one session, oldest first; a session id never crosses tenants."""
    query = select(runs).where(runs.c.tenant_id == tenant_id,
                               runs.c.correlation_id == session_correlation(session))
    return [_record(row) for row in conn.execute(query.order_by(runs.c.id).limit(limit))]


@reads
def unfinished_runs(conn: Connection, tenant_id: str | None = None) -> list[RunRecord]:
    """Runs left ``queued`` or ``running`` that nobody holds a lease on: a crash or a
    shutdown interrupted them."""
    query = select(runs).where(runs.c.status.in_(("queued", "running")), _lease_free())
    if tenant_id is not None:
        query = query.where(runs.c.tenant_id == tenant_id)
    return [_record(row) for row in conn.execute(query.order_by(runs.c.id))]


def update_run(
    conn: Connection,
    ctx: TenantContext,
    *,
    status: RunStatus,
    answer: str | None = None,
    detail: dict[str, Any] | None = None,
    totals: dict[str, int] | None = None,
    new_attempt: bool = False,
    release: bool = False,
) -> None:
    """Move the run to ``status``, with its outcome; ``release`` ends its lease."""
    values: dict[str, Any] = {"status": status, "updated_at": datetime.now(UTC)}
    if answer is not None:
        values["answer"] = answer
    if detail is not None:
        values["detail"] = detail
    if totals:
        values.update(totals)
    if new_attempt:
        values["attempts"] = runs.c.attempts + 1
    if release:
        values |= {"lease_owner": None, "lease_expires_at": None}
    conn.execute(
        update(runs)
        .where(runs.c.tenant_id == ctx.tenant_id, runs.c.id == ctx.run_id)
        .values(**values)
    )


def _lease_free() -> ColumnElement[bool]:
    return or_(runs.c.lease_owner.is_(None), runs.c.lease_expires_at < datetime.now(UTC))


def claim_run(conn: Connection, ctx: TenantContext, lease: Lease, *,
              or_mine: bool = False) -> bool:
    """Lease an unfinished run to ``lease.owner``; ``False`` if someone holds it.

    One conditional UPDATE, so of two processes (or two presses of a Resume button)
    one gets the run. ``or_mine`` also accepts a lease the owner already holds.
    """
    free = or_(_lease_free(), runs.c.lease_owner == lease.owner) if or_mine else _lease_free()
    claimed = conn.execute(
        update(runs)
        .where(runs.c.tenant_id == ctx.tenant_id, runs.c.id == ctx.run_id,
               runs.c.status.not_in(FINAL_STATUSES), free)
        .values(lease_owner=lease.owner, lease_expires_at=lease.expires_at)
    )
    return claimed.rowcount == 1


def release_run(conn: Connection, ctx: TenantContext, owner: str) -> None:
    """Give up ``owner``'s lease on the run (it finished, or was stopped for later)."""
    conn.execute(
        update(runs)
        .where(runs.c.tenant_id == ctx.tenant_id, runs.c.id == ctx.run_id,
               runs.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def mark_delivered(conn: Connection, tenant_id: str, run_id: str) -> bool:
    """Note in the run's detail that its outcome reached the place it was asked in;
    ``False`` if that was already noted (a second delivery must not happen).

    The note belongs to the outcome: the next ``finish_run`` of the run (a halted run
    resumed) writes a fresh detail, whose outcome is delivered in its turn.
    """
    detail = conn.scalar(
        select(runs.c.detail).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)
        .with_for_update()
    )
    if detail is None or dict(detail).get("delivered"):
        return False
    conn.execute(
        update(runs).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)
        .values(detail=dict(detail) | {"delivered": True})
    )
    return True


@reads
def leases_held(conn: Connection, prefix: str) -> set[str]:
    """The owners whose names start with ``prefix`` that hold a lease on some run now."""
    return set(conn.scalars(
        select(runs.c.lease_owner).distinct()
        .where(runs.c.lease_owner.startswith(prefix, autoescape=True),
               runs.c.lease_expires_at >= datetime.now(UTC))
    ))


def break_leases(conn: Connection, owners: Iterable[str]) -> int:
    """End every lease of ``owners``, processes known to be dead; how many runs were freed.

    For the queue's stalled-job sweep: a worker whose heartbeat stopped holds its runs
    until their leases expire (the walltime ceiling plus a margin); freeing them at once
    lets the retried jobs resume those runs from their checkpoints now.
    """
    dead = sorted(set(owners))
    if not dead:
        return 0
    freed = conn.execute(
        update(runs).where(runs.c.lease_owner.in_(dead))
        .values(lease_owner=None, lease_expires_at=None)
    )
    return max(0, freed.rowcount)


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """What a tenant's runs used since a point in time (for operators' metrics)."""

    tenant_id: str
    tokens: int
    cost_microcents: int


@reads
def usage_by_tenant(conn: Connection, since: datetime) -> list[TenantUsage]:
    """Every tenant's tokens and cost over its runs created since ``since``, most first."""
    tokens = func.sum(runs.c.input_tokens + runs.c.output_tokens)
    rows = conn.execute(
        select(runs.c.tenant_id, tokens, func.sum(runs.c.cost_microcents))
        .where(runs.c.created_at >= since)
        .group_by(runs.c.tenant_id)
        .order_by(tokens.desc(), runs.c.tenant_id)
    )
    return [TenantUsage(str(tenant), int(used or 0), int(cost or 0))
            for tenant, used, cost in rows]


RESUME_REQUESTED = "resume_requested_at"
"""The key of a run's detail that marks it ``queued`` again after a halt (``requeue_halted``),
holding when the resume was asked for (ISO-8601 UTC)."""


def requeue_halted(conn: Connection, tenant_id: str, run_id: str) -> bool:
    """Move a halted run that nobody holds back to ``queued``, for a worker to resume;
    ``False`` if it is not halted (or is leased) any more.

    One conditional UPDATE, so of two presses of a Resume button one moves the run.
    The halt's detail gives way to ``RESUME_REQUESTED``: the run shows no halt while it
    waits, and its resume is told from a first start by that mark.
    """
    now = datetime.now(UTC)
    moved = conn.execute(
        update(runs)
        .where(runs.c.tenant_id == tenant_id, runs.c.id == run_id, runs.c.status == "halted",
               _lease_free())
        .values(status="queued", detail={RESUME_REQUESTED: now.isoformat()}, updated_at=now)
    )
    return moved.rowcount == 1


def refuse_queued(conn: Connection, tenant_id: str, run_id: str, reason: str) -> bool:
    """End a ``queued`` run as ``refused`` before it started (its tenant's allowance was
    spent by the time it was taken up); ``False`` if it was not queued any more."""
    refused = conn.execute(
        update(runs)
        .where(runs.c.tenant_id == tenant_id, runs.c.id == run_id, runs.c.status == "queued")
        .values(status="refused", detail={"error": reason}, updated_at=datetime.now(UTC))
    )
    return refused.rowcount == 1
