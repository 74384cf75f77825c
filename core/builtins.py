"""Capabilities that ship with Tenantry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.audit import AuditLog
from core.budget import MonthlyLedger
from core.context import TenantContext
from core.db.engine import Database
from core.prices import format_microcents
from core.runs import RunStore
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
            standing = await MonthlyLedger(self.db).standing(tenant_id)
            plan = standing.plan
            tokens, cost, calls = standing.used
            return {
                "period": standing.period,
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


@dataclass
class AuditRecent:
    """``audit.recent``: the tenant's latest audit events (admins only, by default policy)."""

    audit: AuditLog
    name: str = "audit.recent"
    description: str = (
        "List this workspace's most recent audit events (runs started and completed, tools "
        "invoked or refused, deletions), newest first."
    )

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        """Bound to the run's tenant's log and nothing else."""
        tenant_id = ctx.tenant_id

        async def audit_recent(limit: int = 10) -> list[dict[str, Any]]:
            """The newest audit events of this workspace.

            Args:
                limit: How many events, 1 to 50.
            """
            events = await self.audit.recent(tenant_id, max(1, min(limit, 50)))
            return [
                {"seq": e.seq, "event": e.event, "time": e.time, "run_id": e.run_id,
                 "fields": dict(e.fields)}
                for e in events
            ]

        return ToolBinding(capability=self.name, description=self.description,
                           function=audit_recent)


@dataclass
class RunStatusCapability:
    """``runs.status``: what became of an earlier request, by its run id.

    The run id is a resource id: the guard checks that the run belongs to the calling
    tenant before this function is called.
    """

    db: Database
    name: str = "runs.status"
    description: str = "Look up the status and cost of an earlier request by its run id."

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        """Bound to the run's tenant; reads are filtered by it as well."""
        tenant_id = ctx.tenant_id
        store = RunStore(self.db)

        async def run_status(run_id: str) -> dict[str, Any]:
            """Status of one earlier run of this workspace.

            Args:
                run_id: The run id, as shown with the answer.
            """
            record = await store.get(tenant_id, run_id)
            return {"run_id": record.id, "status": record.status,
                    "cost": format_microcents(record.cost_microcents),
                    "tool_calls": record.tool_calls, "started": record.created_at.isoformat()}

        return ToolBinding(capability=self.name, description=self.description,
                           function=run_status, resource_kind="run", resource_arg="run_id")
