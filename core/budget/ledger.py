"""The tenant's monthly ledger and the usage ledger of its runs' steps.

The monthly allowance is shared by every concurrent run of a tenant, in any process,
so the database enforces it: ``reserve`` charges a step's worst case with one
conditional ``UPDATE`` that only succeeds while the allowance still covers it, and
``settle`` moves the month from that worst case to what the step really used. Each
attempt at a step has one row in ``usage_ledger``, keyed ``(run_id, step_id)``.

These are the only functions that write either table; each runs inside the caller's
transaction (``Database.run``), so a reservation commits before the call it covers
and a settlement commits with what the call produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from core.budget.meter import TokenUsage
from core.context import MonthlyRemaining
from core.db.engine import dialect_insert, reads
from core.db.schema import monthly_usage, usage_ledger
from core.errors import BudgetExceeded
from core.prices import ModelPrice
from core.tenants import Plan, Tenant, billing_period, get_plan, get_tenant

StepKind = Literal["model", "tool"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """A worst-case amount held against the run and the month until it is settled."""

    run_id: str
    step_id: str
    tenant_id: str
    period: str
    kind: StepKind
    tokens: int
    cost_microcents: int
    tool_calls: int


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One attempt at a step, as the usage ledger holds it."""

    step_id: str
    status: str
    retried: bool
    response: str | None


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Totals of a run's ledger, telling done work from retried work.

    ``input_tokens`` counts every prompt token, cached or not (what a model was
    shown); ``cache_read_tokens`` and ``cache_write_tokens`` say how many of them were
    read from or written to the provider's prompt cache, which are priced apart.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    tokens: int = 0
    tool_calls: int = 0
    cost_microcents: int = 0
    retried_tokens: int = 0
    retried_tool_calls: int = 0
    retried_cost_microcents: int = 0


@dataclass(frozen=True, slots=True)
class Standing:
    """A tenant, its plan, its billing month and the month's usage, from one snapshot.

    ``used`` is tokens, cost in microcents and tool calls, reservations included.
    """

    tenant: Tenant
    plan: Plan
    period: str
    used: tuple[int, int, int]

    @property
    def remaining(self) -> MonthlyRemaining:
        """What is left of the plan's monthly allowance."""
        tokens, cost, calls = self.used
        return MonthlyRemaining(
            tokens=self.plan.monthly_tokens - tokens,
            tool_calls=self.plan.monthly_tool_calls - calls,
            cost_microcents=self.plan.monthly_cost_microcents - cost,
        )


# The statements of every step are built once: building one costs more than SQLite
# takes to run it. Their parameters are named after the values they carry.
_m, _l = monthly_usage.c, usage_ledger.c
_THIS_MONTH = (_m.tenant_id == bindparam("m_tenant"), _m.period == bindparam("m_period"))
_CHARGE = (
    update(monthly_usage)
    .where(
        *_THIS_MONTH,
        _m.tokens + bindparam("m_tokens") <= bindparam("m_max_tokens"),
        _m.cost_microcents + bindparam("m_cost") <= bindparam("m_max_cost"),
        _m.tool_calls + bindparam("m_calls") <= bindparam("m_max_calls"),
    )
    .values(tokens=_m.tokens + bindparam("m_tokens"),
            cost_microcents=_m.cost_microcents + bindparam("m_cost"),
            tool_calls=_m.tool_calls + bindparam("m_calls"))
)
_OPEN = usage_ledger.insert()
_SETTLE = (
    update(usage_ledger)
    .where(_l.run_id == bindparam("r_run"), _l.step_id == bindparam("r_step"),
           _l.status == "reserved")
    .values(status="settled")
)
_MOVE = (
    update(monthly_usage)
    .where(*_THIS_MONTH)
    .values(tokens=_m.tokens + bindparam("m_tokens"),
            cost_microcents=_m.cost_microcents + bindparam("m_cost"))
)


def reserve(conn: Connection, held: Reservation, plan: Plan,
            price: ModelPrice | None = None) -> None:
    """Charge ``held`` against the month, if the allowance covers it, and open its row.

    Raises:
        BudgetExceeded: with a ``monthly_*`` ceiling when the allowance cannot cover it.
    """
    if not _charge(conn, held, plan):
        # The first reservation of a month finds no row for it.
        conn.execute(
            dialect_insert(conn, monthly_usage)
            .values(tenant_id=held.tenant_id, period=held.period, tokens=0,
                    cost_microcents=0, tool_calls=0)
            .on_conflict_do_nothing()
        )
        if not _charge(conn, held, plan):
            raise _monthly_refusal(conn, held, plan)
    zero = dict.fromkeys(("input_tokens", "output_tokens", "cache_read_tokens",
                          "cache_write_tokens", "tool_calls", "cost_microcents"), 0)
    conn.execute(_OPEN, dict(
        run_id=held.run_id, step_id=held.step_id, tenant_id=held.tenant_id,
        period=held.period, kind=held.kind, status="reserved", retried=False,
        model=price.model if price else None, price_version=price.version if price else None,
        reserved_tokens=held.tokens, reserved_cost_microcents=held.cost_microcents,
        reserved_tool_calls=held.tool_calls, created_at=datetime.now(UTC), response=None,
        settled_at=None, **zero,
    ))


def _charge(conn: Connection, held: Reservation, plan: Plan) -> bool:
    charged = conn.execute(_CHARGE, {
        "m_tenant": held.tenant_id, "m_period": held.period,
        "m_tokens": held.tokens, "m_max_tokens": plan.monthly_tokens,
        "m_cost": held.cost_microcents, "m_max_cost": plan.monthly_cost_microcents,
        "m_calls": held.tool_calls, "m_max_calls": plan.monthly_tool_calls,
    })
    return charged.rowcount == 1


def _monthly_refusal(conn: Connection, held: Reservation, plan: Plan) -> BudgetExceeded:
    """Which monthly ceiling a refused reservation would have broken."""
    month = {"m_tenant": held.tenant_id, "m_period": held.period}
    row = conn.execute(select(monthly_usage).where(*_THIS_MONTH), month).one()
    if row.tokens + held.tokens > plan.monthly_tokens:
        return BudgetExceeded("monthly_tokens", plan.monthly_tokens, int(row.tokens))
    if row.cost_microcents + held.cost_microcents > plan.monthly_cost_microcents:
        return BudgetExceeded(
            "monthly_cost_microcents", plan.monthly_cost_microcents, int(row.cost_microcents)
        )
    return BudgetExceeded("monthly_tool_calls", plan.monthly_tool_calls, int(row.tool_calls))


def settle(
    conn: Connection,
    held: Reservation,
    *,
    usage: TokenUsage,
    cost_microcents: int,
    response: str | None = None,
    retried: bool = False,
) -> None:
    """Settle a reservation: its row gets the real amounts, the month moves to them.

    Only a row still ``reserved`` changes, so settling a step twice is a no-op.
    ``retried`` marks work that will be done again (a call that did not answer, or
    an answer cut short): it is paid for, but a resume does not replay it.
    """
    settled = conn.execute(_SETTLE, {
        "r_run": held.run_id, "r_step": held.step_id, "retried": retried,
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens, "tool_calls": held.tool_calls,
        "cost_microcents": cost_microcents, "response": response,
        "settled_at": datetime.now(UTC),
    })
    tokens, cost = usage.total - held.tokens, cost_microcents - held.cost_microcents
    if settled.rowcount == 1 and (tokens or cost):
        conn.execute(_MOVE, {"m_tenant": held.tenant_id, "m_period": held.period,
                             "m_tokens": tokens, "m_cost": cost})


def abandon_open(conn: Connection, tenant_id: str, run_id: str) -> None:
    """Close the reservations a run left open (a crash, a shutdown) as retried work.

    Nobody knows what a lost call used, so it is charged at its reserved worst case,
    which the month already holds: the ledger must never undercount what the
    provider may bill. Called when the run resumes, before anything else is opened.
    """
    c = usage_ledger.c
    conn.execute(
        update(usage_ledger)
        .where(c.tenant_id == tenant_id, c.run_id == run_id, c.status == "reserved")
        .values(status="settled", retried=True, input_tokens=c.reserved_tokens,
                cost_microcents=c.reserved_cost_microcents, tool_calls=c.reserved_tool_calls,
                settled_at=datetime.now(UTC))
    )


@reads
def run_rows(conn: Connection, tenant_id: str, run_id: str) -> list[LedgerRow]:
    """Every attempt of a run, oldest first: what a resumed allocation replays."""
    c = usage_ledger.c
    rows = conn.execute(
        select(c.step_id, c.status, c.retried, c.response)
        .where(c.tenant_id == tenant_id, c.run_id == run_id)
        .order_by(c.created_at, c.step_id)
    ).all()
    return [LedgerRow(r.step_id, r.status, bool(r.retried), r.response) for r in rows]


@reads
def summary(conn: Connection, tenant_id: str, run_id: str) -> UsageSummary:
    """The run's totals from its ledger: done work apart from retried work."""
    rows = conn.execute(
        select(usage_ledger).where(
            usage_ledger.c.tenant_id == tenant_id, usage_ledger.c.run_id == run_id
        )
    ).all()
    done = [r for r in rows if not r.retried]
    again = [r for r in rows if r.retried]

    def total(rs: Sequence[Any], *columns: str) -> int:
        return sum(int(getattr(r, name)) for r in rs for name in columns)

    every = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    return UsageSummary(
        input_tokens=total(done, "input_tokens", "cache_read_tokens", "cache_write_tokens"),
        output_tokens=total(done, "output_tokens"),
        cache_read_tokens=total(done, "cache_read_tokens"),
        cache_write_tokens=total(done, "cache_write_tokens"),
        tokens=total(done, *every),
        tool_calls=total(done, "tool_calls"),
        cost_microcents=total(done, "cost_microcents"),
        retried_tokens=total(again, *every),
        retried_tool_calls=total(again, "tool_calls"),
        retried_cost_microcents=total(again, "cost_microcents"),
    )


@reads
def standing(conn: Connection, tenant_id: str) -> Standing:
    """The tenant, its plan and this month's usage, in one read.

    Raises:
        NotFound: unknown tenant, or its plan is gone.
    """
    tenant = get_tenant(conn, tenant_id)
    plan = get_plan(conn, tenant.plan_id)
    period = billing_period(tenant)
    return Standing(tenant, plan, period, used(conn, tenant.id, period))


@reads
def used(conn: Connection, tenant_id: str, period: str) -> tuple[int, int, int]:
    """Tokens, cost and tool calls charged in ``period`` (reservations included)."""
    month = {"m_tenant": tenant_id, "m_period": period}
    row = conn.execute(select(monthly_usage).where(*_THIS_MONTH), month).first()
    if row is None:
        return 0, 0, 0
    return int(row.tokens), int(row.cost_microcents), int(row.tool_calls)
