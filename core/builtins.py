"""Capabilities that ship with Tenantry.

Each tool reads the run's tenant from its ``RunContext`` and nothing else, so it can
only ever report on that tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_ai import RunContext

from core.audit.log import AuditLog, recent_events
from core.budget.ledger import standing
from core.context import TenantContext
from core.db.engine import Database
from core.prices import format_microcents
from core.runs import get_run
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
        """Every run in scope gets it."""
        return ToolBinding(capability=self.name, description=self.description,
                           function=self.budget_status)

    async def budget_status(self, ctx: RunContext[TenantContext]) -> dict[str, Any]:
        """Month-to-date usage of this tenant."""
        held = await self.db.run(standing, ctx.deps.tenant_id)
        plan = held.plan
        tokens, cost, calls = held.used
        return {
            "period": held.period,
            "tokens": {"used": tokens, "allowance": plan.monthly_tokens},
            "cost": {
                "used": format_microcents(cost),
                "allowance": format_microcents(plan.monthly_cost_microcents),
            },
            "tool_calls": {"used": calls, "allowance": plan.monthly_tool_calls},
        }


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
        """Every run in scope gets it."""
        return ToolBinding(capability=self.name, description=self.description,
                           function=self.audit_recent)

    async def audit_recent(self, ctx: RunContext[TenantContext],
                           limit: int = 10) -> list[dict[str, Any]]:
        """The newest audit events of this workspace.

        Args:
            limit: How many events, 1 to 50.
        """
        events = await self.audit.db.run(recent_events, ctx.deps.tenant_id,
                                         max(1, min(limit, 50)))
        return [
            {"seq": e.seq, "event": e.event, "time": e.time, "run_id": e.run_id,
             "fields": dict(e.fields)}
            for e in events
        ]


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
        """Every run in scope gets it."""
        return ToolBinding(capability=self.name, description=self.description,
                           function=self.run_status, resource_kind="run", resource_arg="run_id")

    async def run_status(self, ctx: RunContext[TenantContext], run_id: str) -> dict[str, Any]:
        """Status of one earlier run of this workspace.

        Args:
            run_id: The run id, as shown with the answer.
        """
        record = await self.db.run(get_run, ctx.deps.tenant_id, run_id)
        return {"run_id": record.id, "status": record.status,
                "cost": format_microcents(record.cost_microcents),
                "tool_calls": record.tool_calls, "started": record.created_at.isoformat()}
