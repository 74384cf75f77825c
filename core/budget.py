"""Budgets: the per-run meter and the tenant's monthly ledger.

Limits are plain values (``Budget`` in the context, the plan's monthly allowance);
the agent loop calls the named checks at fixed points: ``before_model_call``,
``after_model_call``, ``before_tool_call``, ``after_tool_call``. A failed check raises
``BudgetExceeded`` naming the ceiling, its limit and what was used.

The monthly allowance is shared by every concurrent run of a tenant, in any process,
so it is enforced by the database: one conditional ``UPDATE`` per reservation that
only succeeds while the allowance still covers it. Ledger rows are keyed
``(run_id, step_id)``; a replayed step finds its row instead of charging again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.engine import Connection

from core.context import MonthlyRemaining, TenantContext
from core.db.engine import Database
from core.db.pipeline import wait
from core.db.prepared import Prepared
from core.db.schema import monthly_usage, usage_ledger
from core.errors import BudgetExceeded
from core.journal import RunJournal
from core.prices import ModelPrice
from core.tenants import Plan, Tenant, billing_period, plan_in, tenant_in

StepKind = Literal["model", "tool"]

MIN_OUTPUT_TOKENS = 64
"""A model call that could not write even this much is halted instead of truncated."""

# The statements of every step are built once and run through ``Prepared``: building,
# cache-keying and executing a statement through SQLAlchemy costs several times what
# SQLite takes to run it.
_IN_MONTH = (
    monthly_usage.c.tenant_id == bindparam("m_tenant"),
    monthly_usage.c.period == bindparam("m_period"),
)
_MONTH_MOVES = {
    "tokens": monthly_usage.c.tokens + bindparam("m_tokens"),
    "cost_microcents": monthly_usage.c.cost_microcents + bindparam("m_cost"),
    "tool_calls": monthly_usage.c.tool_calls + bindparam("m_calls"),
}
_CHARGE_STATEMENT = (
    update(monthly_usage)
    .where(
        *_IN_MONTH,
        monthly_usage.c.tokens + bindparam("m_tokens") <= bindparam("m_max_tokens"),
        monthly_usage.c.cost_microcents + bindparam("m_cost") <= bindparam("m_max_cost"),
        monthly_usage.c.tool_calls + bindparam("m_calls") <= bindparam("m_max_calls"),
    )
    .values(**_MONTH_MOVES)
    .returning(monthly_usage.c.tokens)
)
_CHARGE = Prepared(_CHARGE_STATEMENT)
_ADJUST_STATEMENT = update(monthly_usage).where(*_IN_MONTH).values(**_MONTH_MOVES)
_OPEN = Prepared(usage_ledger.insert())
_OPENED = (
    "run_id", "step_id", "tenant_id", "period", "kind", "status", "retried", "model",
    "price_version", "reserved_tokens", "reserved_cost_microcents", "reserved_tool_calls",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "tool_calls",
    "cost_microcents", "created_at",
)
_CHARGE_AND_OPEN = Prepared(
    # PostgreSQL: the charge and the ledger row in one statement, one round trip. The
    # row is inserted only if the charge updated the month (a data-modifying CTE).
    usage_ledger.insert()
    .from_select(
        list(_OPENED),
        select(
            *(bindparam("o_" + name, type_=usage_ledger.c[name].type) for name in _OPENED)
        ).select_from(_CHARGE_STATEMENT.cte("charged")),
    )
    .returning(usage_ledger.c.step_id)
)
_SETTLE_STATEMENT = (
    update(usage_ledger)
    .where(
        usage_ledger.c.run_id == bindparam("l_run"),
        usage_ledger.c.step_id == bindparam("l_step"),
        usage_ledger.c.status == "reserved",
    )
    .values(
        status="settled",
        retried=bindparam("l_retried"),
        input_tokens=bindparam("l_input"),
        output_tokens=bindparam("l_output"),
        cache_read_tokens=bindparam("l_cache_read"),
        cache_write_tokens=bindparam("l_cache_write"),
        tool_calls=bindparam("l_calls"),
        cost_microcents=bindparam("l_cost"),
        response=bindparam("l_response"),
        settled_at=bindparam("l_at"),
    )
)
_ADJUST = Prepared(_ADJUST_STATEMENT)
_SETTLE = Prepared(_SETTLE_STATEMENT)
_SETTLED = _SETTLE_STATEMENT.returning(usage_ledger.c.step_id).cte("settled")
_SETTLE_AND_ADJUST = Prepared(
    # PostgreSQL: the ledger row settles and the month moves in one statement, the
    # month only if the row was still reserved. The outer SELECT only gives the two
    # data-modifying CTEs a statement; its count is not read (the settlement is queued).
    select(func.count())
    .select_from(_SETTLED)
    .add_cte(_ADJUST_STATEMENT.where(exists(select(_SETTLED.c.step_id))).cte("adjusted"))
)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """The usage of one model request, as the provider reported it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total(self) -> int:
        """Every token the request consumed, cached or not."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


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
    """One step's line in the usage ledger."""

    step_id: str
    period: str
    status: str
    retried: bool
    tokens: int
    cost_microcents: int
    tool_calls: int
    reserved_tokens: int
    reserved_cost_microcents: int
    reserved_tool_calls: int
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
        return remaining_of(self.plan, self.used)


class MonthlyLedger:
    """The tenant's month-to-date usage, shared by all of its runs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def standing(self, tenant_id: str) -> Standing:
        """The tenant, its plan and this month's usage, in one read.

        Raises:
            NotFound: unknown tenant, or its plan is gone.
        """
        return await self.db.run(lambda conn: standing_in(conn, tenant_id), readonly=True)

    async def used(self, tenant_id: str, period: str) -> tuple[int, int, int]:
        """Tokens, cost and tool calls charged this period (reservations included)."""
        return await self.db.run(lambda conn: used_in(conn, tenant_id, period), readonly=True)

    async def run_rows(self, tenant_id: str, run_id: str) -> list[LedgerRow]:
        """Every ledger row of a run, oldest first: what a resumed allocation replays."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(usage_ledger)
                    .where(usage_ledger.c.tenant_id == tenant_id, usage_ledger.c.run_id == run_id)
                    .order_by(usage_ledger.c.created_at, usage_ledger.c.step_id)
                )
            ).all()
        return [
            LedgerRow(
                step_id=r.step_id,
                period=r.period,
                status=r.status,
                retried=bool(r.retried),
                tokens=int(r.input_tokens + r.output_tokens + r.cache_read_tokens
                           + r.cache_write_tokens),
                cost_microcents=int(r.cost_microcents),
                tool_calls=int(r.tool_calls),
                reserved_tokens=int(r.reserved_tokens),
                reserved_cost_microcents=int(r.reserved_cost_microcents),
                reserved_tool_calls=int(r.reserved_tool_calls),
                response=r.response,
            )
            for r in rows
        ]

    async def reserve(
        self,
        ctx: TenantContext,
        journal: RunJournal,
        *,
        plan: Plan,
        period: str,
        step_id: str,
        kind: StepKind,
        tokens: int,
        cost_microcents: int,
        tool_calls: int,
        price: ModelPrice | None = None,
    ) -> Reservation:
        """Hold a worst case against the month, atomically, and open the step's ledger row.

        The run's deferred writes commit in the same transaction, so what the run did
        so far is durable before the call this reservation is for goes out.

        Raises:
            BudgetExceeded: with a ``monthly_*`` ceiling when the allowance cannot cover it.
        """
        reservation = Reservation(
            run_id=ctx.run_id,
            step_id=step_id,
            tenant_id=ctx.tenant_id,
            period=period,
            kind=kind,
            tokens=tokens,
            cost_microcents=cost_microcents,
            tool_calls=tool_calls,
        )
        charged = await journal.commit(
            lambda conn: self._charge_in(conn, reservation, plan, price)
        )
        if not charged():
            refusal = await self.db.run(
                lambda conn: self._charge_or_refuse_in(conn, reservation, plan, price)
            )
            if refusal is not None:
                raise refusal
        return reservation

    def _charge_in(
        self, conn: Connection, held: Reservation, plan: Plan, price: ModelPrice | None
    ) -> Callable[[], bool]:
        """Charge the month if it still covers the reservation, and open the step's row.

        Returns whether it did, to be asked once the transaction is over: on
        PostgreSQL the charge is one statement that does not wait for its result, so
        the run's deferred writes, the charge and ``COMMIT`` share one round trip.
        ``False`` means the allowance cannot cover it or the month has no row yet
        (``_charge_or_refuse_in`` tells which).
        """
        charge = {
            "m_tenant": held.tenant_id, "m_period": held.period,
            "m_tokens": held.tokens, "m_max_tokens": plan.monthly_tokens,
            "m_cost": held.cost_microcents, "m_max_cost": plan.monthly_cost_microcents,
            "m_calls": held.tool_calls, "m_max_calls": plan.monthly_tool_calls,
        }
        row = {
            "run_id": held.run_id,
            "step_id": held.step_id,
            "tenant_id": held.tenant_id,
            "period": held.period,
            "kind": held.kind,
            "status": "reserved",
            "retried": False,
            "model": price.model if price else None,
            "price_version": price.version if price else None,
            "reserved_tokens": held.tokens,
            "reserved_cost_microcents": held.cost_microcents,
            "reserved_tool_calls": held.tool_calls,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "tool_calls": 0,
            "cost_microcents": 0,
            "created_at": datetime.now(UTC),
        }
        if not self.db.is_sqlite:
            both = charge | {"o_" + name: value for name, value in row.items()}
            charge_and_open = _CHARGE_AND_OPEN.queue(conn, both)
            return lambda: charge_and_open.row() is not None
        charged = _CHARGE.execute(conn, charge).fetchone() is not None
        if charged:
            _OPEN.execute(conn, row)
        return lambda: charged

    def _charge_or_refuse_in(
        self, conn: Connection, held: Reservation, plan: Plan, price: ModelPrice | None
    ) -> BudgetExceeded | None:
        """After a charge that did not happen: create the month's row if it is missing
        (the first reservation of a month finds none) and charge again, or say which
        monthly ceiling the reservation would break.
        """
        conn.execute(
            self.db.insert(monthly_usage)
            .values(tenant_id=held.tenant_id, period=held.period, tokens=0,
                    cost_microcents=0, tool_calls=0)
            .on_conflict_do_nothing()
        )
        charged = self._charge_in(conn, held, plan, price)
        wait(conn)
        if charged():
            return None
        return _monthly_refusal(conn, held, plan)

    def settle_in(
        self,
        conn: Connection,
        reservation: Reservation,
        *,
        usage: TokenUsage,
        cost_microcents: int,
        tool_calls: int,
        response: str | None = None,
        retried: bool = False,
    ) -> None:
        """Settle a reservation inside the caller's transaction.

        The month moves from the reserved worst case to the actual amounts. The ledger
        row changes only while it is still ``reserved``, so a second settle of the same
        step is a no-op. Nothing waits for the result: on PostgreSQL the settlement
        travels with the transaction's next round trip (``Prepared.queue``).
        """
        row = {
            "l_run": reservation.run_id,
            "l_step": reservation.step_id,
            "l_retried": retried,
            "l_input": usage.input_tokens,
            "l_output": usage.output_tokens,
            "l_cache_read": usage.cache_read_tokens,
            "l_cache_write": usage.cache_write_tokens,
            "l_calls": tool_calls,
            "l_cost": cost_microcents,
            "l_response": response,
            "l_at": datetime.now(UTC),
        }
        month = {
            "m_tenant": reservation.tenant_id,
            "m_period": reservation.period,
            "m_tokens": usage.total - reservation.tokens,
            "m_cost": cost_microcents - reservation.cost_microcents,
            "m_calls": tool_calls - reservation.tool_calls,
        }
        if not any(month[key] for key in ("m_tokens", "m_cost", "m_calls")):
            _SETTLE.queue(conn, row)  # a tool call costs what it declared: nothing to move
        elif not self.db.is_sqlite:
            _SETTLE_AND_ADJUST.queue(conn, row | month)
        elif _SETTLE.execute(conn, row).rowcount == 1:
            _ADJUST.execute(conn, month)

    def settle_later(
        self,
        journal: RunJournal,
        reservation: Reservation,
        *,
        usage: TokenUsage,
        cost_microcents: int,
        tool_calls: int,
        response: str | None = None,
        retried: bool = False,
    ) -> None:
        """Settle a reservation with the run's next transaction (see ``RunJournal``)."""
        journal.defer(
            lambda conn: self.settle_in(
                conn, reservation, usage=usage, cost_microcents=cost_microcents,
                tool_calls=tool_calls, response=response, retried=retried,
            )
        )

    def abandon(self, journal: RunJournal, run_id: str, row: LedgerRow, tenant_id: str) -> None:
        """Close a reservation orphaned by a crash as retried work, with the run's next write.

        Nobody knows what the lost call used, so it is charged at its reserved worst
        case: the ledger must never undercount what the provider may bill. The charge
        goes to the month the reservation was made in, which a run resumed after the
        turn of the month is no longer in.
        """
        reservation = Reservation(
            run_id=run_id, step_id=row.step_id, tenant_id=tenant_id, period=row.period,
            kind="model", tokens=row.reserved_tokens,
            cost_microcents=row.reserved_cost_microcents, tool_calls=row.reserved_tool_calls,
        )
        self.settle_later(
            journal,
            reservation,
            usage=TokenUsage(input_tokens=row.reserved_tokens),
            cost_microcents=row.reserved_cost_microcents,
            tool_calls=row.reserved_tool_calls,
            retried=True,
        )

    async def summary(self, ctx: TenantContext, run_id: str) -> UsageSummary:
        """The run's totals from its ledger: done work apart from retried work."""
        return await self.db.run(lambda conn: summary_in(conn, ctx, run_id), readonly=True)


def summary_in(conn: Connection, ctx: TenantContext, run_id: str) -> UsageSummary:
    """``MonthlyLedger.summary`` inside the caller's transaction."""
    rows = conn.execute(
        select(usage_ledger).where(
            usage_ledger.c.tenant_id == ctx.tenant_id, usage_ledger.c.run_id == run_id
        )
    ).all()
    done = [r for r in rows if not r.retried]
    again = [r for r in rows if r.retried]

    def tokens(rs: list[Any]) -> int:
        return sum(
            int(r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens)
            for r in rs
        )

    return UsageSummary(
        input_tokens=sum(int(r.input_tokens + r.cache_read_tokens + r.cache_write_tokens)
                         for r in done),
        output_tokens=sum(int(r.output_tokens) for r in done),
        cache_read_tokens=sum(int(r.cache_read_tokens) for r in done),
        cache_write_tokens=sum(int(r.cache_write_tokens) for r in done),
        tokens=tokens(done),
        tool_calls=sum(int(r.tool_calls) for r in done),
        cost_microcents=sum(int(r.cost_microcents) for r in done),
        retried_tokens=tokens(again),
        retried_tool_calls=sum(int(r.tool_calls) for r in again),
        retried_cost_microcents=sum(int(r.cost_microcents) for r in again),
    )


def standing_in(conn: Connection, tenant_id: str) -> Standing:
    """``MonthlyLedger.standing`` inside the caller's transaction."""
    tenant = tenant_in(conn, tenant_id)
    plan = plan_in(conn, tenant.plan_id)
    period = billing_period(tenant)
    return Standing(tenant, plan, period, used_in(conn, tenant.id, period))


def used_in(conn: Connection, tenant_id: str, period: str) -> tuple[int, int, int]:
    """``MonthlyLedger.used`` inside the caller's transaction."""
    row = conn.execute(
        select(monthly_usage).where(
            monthly_usage.c.tenant_id == tenant_id, monthly_usage.c.period == period
        )
    ).first()
    if row is None:
        return 0, 0, 0
    return int(row.tokens), int(row.cost_microcents), int(row.tool_calls)


def remaining_of(plan: Plan, used: tuple[int, int, int]) -> MonthlyRemaining:
    """What ``used`` (tokens, cost, tool calls) leaves of the plan's monthly allowance."""
    tokens, cost, calls = used
    return MonthlyRemaining(
        tokens=plan.monthly_tokens - tokens,
        tool_calls=plan.monthly_tool_calls - calls,
        cost_microcents=plan.monthly_cost_microcents - cost,
    )


def _monthly_refusal(conn: Connection, held: Reservation, plan: Plan) -> BudgetExceeded:
    """Which monthly ceiling a refused reservation would have broken."""
    row = conn.execute(
        select(monthly_usage).where(
            monthly_usage.c.tenant_id == held.tenant_id, monthly_usage.c.period == held.period
        )
    ).one()
    if row.tokens + held.tokens > plan.monthly_tokens:
        return BudgetExceeded("monthly_tokens", plan.monthly_tokens, int(row.tokens))
    if row.cost_microcents + held.cost_microcents > plan.monthly_cost_microcents:
        return BudgetExceeded(
            "monthly_cost_microcents", plan.monthly_cost_microcents, int(row.cost_microcents)
        )
    return BudgetExceeded("monthly_tool_calls", plan.monthly_tool_calls, int(row.tool_calls))


@dataclass
class Replay:
    """What earlier allocations of a run left in the ledgers, looked up without a query.

    A fresh run starts empty; a resumed run loads its ledger rows and tool effects
    once. Steps opened by this allocation are added as they happen, so a step id is
    never reused within a run.
    """

    attempts_by_step: dict[str, list[LedgerRow]] = field(default_factory=dict)
    effects: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[LedgerRow], effects: dict[str, str]) -> Replay:
        """The index of a resumed run's ledger rows (oldest first) and effects."""
        replay = cls(effects=dict(effects))
        for row in rows:
            replay.attempts_by_step.setdefault(base_step(row.step_id), []).append(row)
        return replay

    def attempts(self, step: str) -> list[LedgerRow]:
        """Every attempt at ``step`` so far, oldest first."""
        return list(self.attempts_by_step.get(step, ()))

    def opened(self, held: Reservation) -> None:
        """Count a step this allocation opened: neither replayable nor abandoned later."""
        self.attempts_by_step.setdefault(base_step(held.step_id), []).append(
            LedgerRow(
                step_id=held.step_id, period=held.period, status="open", retried=False, tokens=0,
                cost_microcents=0, tool_calls=0, reserved_tokens=held.tokens,
                reserved_cost_microcents=held.cost_microcents,
                reserved_tool_calls=held.tool_calls, response=None,
            )
        )


def base_step(step_id: str) -> str:
    """The step an attempt belongs to: ``model:3#2`` is the second attempt at ``model:3``."""
    return step_id.split("#", 1)[0]


class RunMeter:
    """Enforces one run's four ceilings, from the context's budget.

    The meter holds what this allocation of the run has settled plus what is
    reserved in flight; a resumed run gets a fresh meter from a fresh context.
    """

    def __init__(
        self, ctx: TenantContext, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = ctx.budget
        self._clock = clock
        self.started = clock()
        self.tokens = 0
        self.cost_microcents = 0
        self.tool_calls = 0

    @property
    def deadline(self) -> float:
        """The monotonic time by which every call of this allocation must be done."""
        return float(self.started + self.budget.walltime_ceiling_ms / 1000)

    def remaining_s(self) -> float:
        """Seconds left before the walltime ceiling; never negative."""
        return max(0.0, self.deadline - self._clock())

    def elapsed_ms(self) -> int:
        """Milliseconds since this allocation started."""
        return int((self._clock() - self.started) * 1000)

    def check_walltime(self) -> None:
        """Refuse to start anything once the walltime ceiling has passed."""
        elapsed = self.elapsed_ms()
        if elapsed >= self.budget.walltime_ceiling_ms:
            raise BudgetExceeded("walltime_ms", self.budget.walltime_ceiling_ms, elapsed)

    def before_model_call(self, estimated_input: int, wanted_max_tokens: int,
                          price: ModelPrice) -> int:
        """The ``max_tokens`` the budget still allows for the next model request.

        Raises:
            BudgetExceeded: when not even ``MIN_OUTPUT_TOKENS`` of output fit the token
                or cost ceiling: a halted run can resume, a truncated answer cannot.
        """
        self.check_walltime()
        floor = min(MIN_OUTPUT_TOKENS, wanted_max_tokens)
        token_room = self.budget.token_ceiling - self.tokens - estimated_input
        if token_room < floor:
            raise BudgetExceeded(
                "tokens", self.budget.token_ceiling, self.tokens + max(0, estimated_input)
            )
        cost_room = self.budget.cost_ceiling_microcents - self.cost_microcents
        input_cost = price.cost(input_tokens=estimated_input, output_tokens=0)
        by_cost = (
            (cost_room - input_cost) * 1_000_000 // price.output if price.output else token_room
        )
        if by_cost < floor:
            raise BudgetExceeded(
                "cost_microcents",
                self.budget.cost_ceiling_microcents,
                self.cost_microcents + input_cost,
            )
        return int(min(wanted_max_tokens, token_room, by_cost))

    def after_model_call(self, usage: TokenUsage, cost_microcents: int) -> None:
        """Record a settled request; an overrun (provider miscount) halts the next check."""
        self.tokens += usage.total
        self.cost_microcents += cost_microcents

    def before_tool_call(self, declared_cost_microcents: int) -> None:
        """Refuse a tool call beyond the tool-call, cost or walltime ceiling."""
        self.check_walltime()
        if self.tool_calls + 1 > self.budget.tool_call_ceiling:
            raise BudgetExceeded("tool_calls", self.budget.tool_call_ceiling, self.tool_calls)
        if self.cost_microcents + declared_cost_microcents > self.budget.cost_ceiling_microcents:
            raise BudgetExceeded(
                "cost_microcents",
                self.budget.cost_ceiling_microcents,
                self.cost_microcents + declared_cost_microcents,
            )
        self.tool_calls += 1
        self.cost_microcents += declared_cost_microcents

    def after_tool_call(self, refunded_cost_microcents: int = 0) -> None:
        """Give back a tool's declared cost that was not spent (a replayed effect)."""
        self.cost_microcents -= refunded_cost_microcents
