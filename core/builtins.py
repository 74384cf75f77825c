"""Capabilities that ship with Tenantry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.budget import MonthlyLedger
from core.context import TenantContext
from core.db.engine import Database
from core.prices import format_microcents
from core.tenants import billing_period, get_plan, get_tenant
from core.tools import ToolBinding


@dataclass
class BudgetStatus:
    """``budget.status``: the tenant's usage this month against its allowance."""

    db: Database
    name: str = "budget.status"
    description: str = (
        "Report this workspace's AI usage this month (tokens, cost, tool calls) against its "
        "monthly allowance."
    )

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        """Bound to the run's tenant: it can only ever report that tenant's usage."""
        tenant_id = ctx.tenant_id

        async def budget_status() -> dict[str, Any]:
            """Month-to-date usage of this tenant."""
            tenant = await get_tenant(self.db, tenant_id)
            plan = await get_plan(self.db, tenant.plan_id)
            period = billing_period(tenant)
            tokens, cost, calls = await MonthlyLedger(self.db).used(tenant_id, period)
            return {
                "period": period,
                "tokens": {"used": tokens, "allowance": plan.monthly_tokens},
                "cost": {
                    "used": format_microcents(cost),
                    "allowance": format_microcents(plan.monthly_cost_microcents),
                },
                "tool_calls": {"used": calls, "allowance": plan.monthly_tool_calls},
            }

        return ToolBinding(
            capability=self.name, description=self.description, function=budget_status
        )
