"""Plans, tenants and capabilities that tests build on."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from pydantic_ai import RunContext

from core.context import TenantContext
from core.db.engine import Database
from core.tenants import Plan, create_plan, create_tenant
from core.tools import ToolBinding


def plan(plan_id: str = "team", **overrides: int | frozenset[str]) -> Plan:
    """A plan generous enough for a few runs unless overridden."""
    values: dict[str, object] = {
        "monthly_tokens": 10_000_000,
        "monthly_cost_microcents": 10**12,
        "monthly_tool_calls": 10_000,
        "run_tokens": 200_000,
        "run_tool_calls": 20,
        "run_walltime_ms": 60_000,
        "run_cost_microcents": 10**10,
        "capabilities": frozenset({"counter.bump"}),
    }
    values.update(overrides)
    return Plan(id=plan_id, **values)  # type: ignore[arg-type]


async def tenant_on(db: Database, tenant_id: str, the_plan: Plan) -> None:
    """Create the plan (once) and a tenant on it."""
    from core.errors import Conflict

    with contextlib.suppress(Conflict):
        await db.run(create_plan, the_plan)
    await db.run(create_tenant, tenant_id=tenant_id, name=tenant_id.title(), plan_id=the_plan.id)


@dataclass
class CounterCapability:
    """A tool with a visible side effect: every real execution is counted per tenant."""

    name: str = "counter.bump"
    description: str = "Bump the tenant's counter by `by` and return the new value."
    cost_microcents: int = 1_000
    executions: dict[str, int] = field(default_factory=dict)

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        return ToolBinding(
            capability=self.name,
            description=self.description,
            function=self.bump,
            cost_microcents=self.cost_microcents,
        )

    async def bump(self, ctx: RunContext[TenantContext], by: int) -> int:
        """Bump the counter."""
        tenant_id = ctx.deps.tenant_id
        self.executions[tenant_id] = self.executions.get(tenant_id, 0) + by
        return self.executions[tenant_id]
