"""A run allocation's account: what the model wrapper and the tool guard share.

Both meter their calls the same way, through ``open_attempt`` and ``abandon``:

1. the run's own ceilings are checked in memory (``RunMeter``, by the caller);
2. ``open_attempt`` reserves the call's worst case against the month and commits it,
   under the step's next attempt id, before the call goes out;
3. the call answers and the caller settles it, in the transaction that records what
   it produced; or it does not answer (a timeout, an error) and ``abandon`` closes
   the attempt as retried work, paid for but not replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.budget.ledger import Reservation, StepKind, reserve, settle
from core.budget.meter import RunMeter, TokenUsage
from core.budget.replay import Replay
from core.context import TenantContext
from core.db.engine import Database
from core.prices import ModelPrice
from core.tenants import Plan


@dataclass
class RunAccount:
    """One allocation of a run: its context, meter, plan, billing month and replay."""

    db: Database
    ctx: TenantContext
    meter: RunMeter
    plan: Plan
    period: str
    replay: Replay = field(default_factory=Replay)

    async def open_attempt(
        self, step: str, kind: StepKind, *, tokens: int, cost_microcents: int, tool_calls: int,
        price: ModelPrice | None = None,
    ) -> Reservation:
        """Reserve a new attempt at ``step`` against the month, committed on return.

        Raises:
            BudgetExceeded: with a ``monthly_*`` ceiling when the allowance cannot cover it.
        """
        held = Reservation(
            run_id=self.ctx.run_id, step_id=self.replay.next_attempt(step),
            tenant_id=self.ctx.tenant_id, period=self.period, kind=kind, tokens=tokens,
            cost_microcents=cost_microcents, tool_calls=tool_calls,
        )
        await self.db.run(reserve, held, self.plan, price)
        return held

    async def abandon(self, held: Reservation, *, usage: TokenUsage,
                      cost_microcents: int) -> None:
        """Close an attempt whose call did not answer: paid for as retried work."""
        await self.db.run(settle, held, usage=usage, cost_microcents=cost_microcents,
                          retried=True)
