"""A tenant's standing: its month against its allowance, and what its admins oversee.

Every transport shows a person the same figures (Slack's App Home, Teams' card), so
they are read here once and rendered there. Everyone's view holds the tenant's
month-to-date usage and the person's own recent requests; an admin's adds who spent
what, recent refusals and halts, and the latest signed audit checkpoint. Every query
is filtered by the tenant the caller resolved from authentication, and "your
requests" by the principal too, so a standing only ever holds one tenant's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from bots.runtime import Runtime
from core.audit import events
from core.audit.events import AuditEvent
from core.budget.ledger import standing
from core.db.engine import reads
from core.db.schema import runs, usage_ledger
from core.runs import RunRecord, recent_runs

RECENT_RUNS = 10
TOP_PRINCIPALS = 15
RECENT_INCIDENTS = 10
INCIDENT_EVENTS = frozenset({events.TOOL_REFUSED, events.RUN_REFUSED, events.RUN_HALTED})


@dataclass(frozen=True, slots=True)
class Allowance:
    """One figure of the month: what was charged against what the plan allows.

    Attributes:
        name: ``tokens``, ``cost_microcents`` or ``tool_calls``.
        used: Charged this month, open reservations included.
        allowance: The plan's monthly allowance.
    """

    name: str
    used: int
    allowance: int


@dataclass(frozen=True, slots=True)
class RecentRun:
    """One of the person's requests: how it ended, what it cost, when, and what was asked."""

    run_id: str
    status: str
    cost_microcents: int
    created_at: datetime
    prompt: str


@dataclass(frozen=True, slots=True)
class Share:
    """One principal's share of the month, from the same ledger rows the month sums."""

    principal_id: str
    runs: int
    tokens: int
    cost_microcents: int
    tool_calls: int


@dataclass(frozen=True, slots=True)
class Incident:
    """A refusal or a halt from the tenant's audit log.

    Attributes:
        event: ``tool.refused``, ``run.refused`` or ``run.halted``.
        principal_id: Whose request it was; ``None`` if the log does not say.
        time: When it was recorded.
        reason: Why a tool or a request was refused; empty for a halt.
        capability: The refused tool, or the tool of an unconfirmed halt; else empty.
        ceiling: The ceiling a halted run reached; empty for a refusal.
        limit: That ceiling's limit.
        used: What the run had used of it.
    """

    event: str
    principal_id: str | None
    time: datetime
    reason: str = ""
    capability: str = ""
    ceiling: str = ""
    limit: int = 0
    used: int = 0


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """The newest signed head of the tenant's audit log."""

    size: int
    root: str
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class AdminStanding:
    """What only a tenant admin sees.

    Attributes:
        shares: The top principals of the month by cost, at most ``TOP_PRINCIPALS``.
        more_shares: Whether more principals spent this month than are listed.
        incidents: The newest refusals and halts, newest first.
        checkpoint: The latest signed checkpoint; ``None`` before the first.
    """

    shares: tuple[Share, ...]
    more_shares: bool
    incidents: tuple[Incident, ...]
    checkpoint: AuditCheckpoint | None


@dataclass(frozen=True, slots=True)
class TenantStanding:
    """One person's view of one tenant, in figures, for any transport to render.

    Attributes:
        tenant_id: The tenant resolved from authentication.
        tenant_name: Its display name.
        plan_id: Its plan.
        period: The billing month (``2025-06``), in the tenant's time zone.
        time_zone: That time zone's name.
        suspended: Whether new requests are refused.
        usage: Tokens, cost and tool calls against the allowance, in that order.
        recent: The person's newest requests, newest first.
        admin: The admin's figures; ``None`` for anyone else.
    """

    tenant_id: str
    tenant_name: str
    plan_id: str
    period: str
    time_zone: str
    suspended: bool
    usage: tuple[Allowance, Allowance, Allowance]
    recent: tuple[RecentRun, ...]
    admin: AdminStanding | None = None


def utc(moment: datetime | str) -> datetime:
    """An aware UTC time from a stored one: SQLite hands back naive UTC, the log ISO text."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


async def tenant_standing(runtime: Runtime, *, tenant_id: str, principal_id: str,
                          is_admin: bool) -> TenantStanding:
    """Read one person's standing in one tenant.

    Args:
        tenant_id: The tenant resolved from the chat space's link, never from a payload.
        principal_id: Whose recent requests to include.
        is_admin: Whether to read the admin's figures; the transport decides it from
            the platform's roles and the tenant's granted roles (``owner`` or ``admin``).

    Raises:
        NotFound: No such tenant, or its plan is gone.
    """
    held = await runtime.db.run(standing, tenant_id)
    tenant, plan = held.tenant, held.plan
    tokens, cost, calls = held.used
    mine = await runtime.db.run(recent_runs, tenant.id, RECENT_RUNS, principal_id=principal_id)
    return TenantStanding(
        tenant_id=tenant.id, tenant_name=tenant.name, plan_id=plan.id, period=held.period,
        time_zone=tenant.time_zone, suspended=tenant.status != "active",
        usage=(Allowance("tokens", tokens, plan.monthly_tokens),
               Allowance("cost_microcents", cost, plan.monthly_cost_microcents),
               Allowance("tool_calls", calls, plan.monthly_tool_calls)),
        recent=tuple(_recent(run) for run in mine),
        admin=await _admin(runtime, tenant.id, held.period) if is_admin else None,
    )


def _recent(run: RunRecord) -> RecentRun:
    return RecentRun(run.id, run.status, run.cost_microcents, utc(run.created_at), run.prompt)


async def _admin(runtime: Runtime, tenant_id: str, period: str) -> AdminStanding:
    latest = await runtime.audit.latest_checkpoint(tenant_id)
    shares = await runtime.db.run(_by_principal, tenant_id, period)
    return AdminStanding(
        shares=tuple(shares[:TOP_PRINCIPALS]), more_shares=len(shares) > TOP_PRINCIPALS,
        incidents=tuple(await _incidents(runtime, tenant_id)),
        checkpoint=None if latest is None else AuditCheckpoint(
            latest.size, latest.root, utc(latest.created_at)),
    )


async def principal_share(runtime: Runtime, *, tenant_id: str, principal_id: str,
                          period: str) -> Share:
    """One principal's share of the tenant's month (zeros if it spent nothing).

    Read by the same query as the admin's list of shares, so the two never disagree.
    """
    found = await runtime.db.run(_by_principal, tenant_id, period, principal_id)
    return found[0] if found else Share(principal_id, 0, 0, 0, 0)


@reads
def _by_principal(conn: Connection, tenant_id: str, period: str,
                  principal_id: str | None = None) -> list[Share]:
    """Each principal's share of the month, one more than is shown to tell if there are more.

    An open reservation counts at its reserved amount, as the month does, so the
    shares add up to the tenant's figures. With ``principal_id``, that one's only.
    """
    led = usage_ledger.c
    held = led.status == "reserved"
    spent = led.input_tokens + led.output_tokens + led.cache_read_tokens + led.cache_write_tokens
    cost = func.sum(case((held, led.reserved_cost_microcents), else_=led.cost_microcents))
    query = (
        select(runs.c.principal_id, func.count(func.distinct(runs.c.id)),
               func.sum(case((held, led.reserved_tokens), else_=spent)), cost,
               func.sum(case((held, led.reserved_tool_calls), else_=led.tool_calls)))
        .select_from(usage_ledger.join(
            runs, and_(runs.c.id == led.run_id, runs.c.tenant_id == led.tenant_id)))
        .where(led.tenant_id == tenant_id, led.period == period,
               *(() if principal_id is None else (runs.c.principal_id == principal_id,)))
        .group_by(runs.c.principal_id)
        .order_by(cost.desc(), runs.c.principal_id)
        .limit(TOP_PRINCIPALS + 1)
    )
    return [Share(str(who), int(count), int(tokens or 0), int(spend or 0), int(calls or 0))
            for who, count, tokens, spend, calls in conn.execute(query).all()]


async def _incidents(runtime: Runtime, tenant_id: str) -> list[Incident]:
    found = await runtime.audit.recent(tenant_id, RECENT_INCIDENTS, events=INCIDENT_EVENTS)
    # A halt event names its run, not its principal: look the owners up, in this tenant.
    halted = {e.run_id for e in found if e.event == events.RUN_HALTED and e.run_id}
    owners = await runtime.db.run(_owners, tenant_id, sorted(halted)) if halted else {}
    return [_incident(event, owners) for event in found]


def _incident(event: AuditEvent, owners: dict[str, str]) -> Incident:
    fields = event.fields
    who = fields.get("principal") or owners.get(event.run_id or "")
    return Incident(
        event=event.event, principal_id=None if who is None else str(who),
        time=utc(event.time), reason=str(fields.get("reason", "")),
        capability=str(fields.get("capability", "")), ceiling=str(fields.get("ceiling", "")),
        limit=_number(fields.get("limit")), used=_number(fields.get("used")),
    )


def _number(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


@reads
def _owners(conn: Connection, tenant_id: str, run_ids: list[str]) -> dict[str, str]:
    rows = conn.execute(select(runs.c.id, runs.c.principal_id).where(
        runs.c.tenant_id == tenant_id, runs.c.id.in_(run_ids)))
    return {str(run_id): str(who) for run_id, who in rows}
