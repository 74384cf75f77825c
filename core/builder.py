"""The one builder of ``TenantContext``: tenant, plan and month-to-date usage in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.budget import MonthlyLedger
from core.context import Initiator, PrincipalKind, TenantContext, derive_context
from core.db.engine import Database
from core.errors import RunRefused
from core.tenants import Plan, Tenant

if TYPE_CHECKING:
    from core.authz import Authorizer


@dataclass(frozen=True, slots=True)
class RunGrant:
    """A context plus the tenant records it was derived from.

    ``authorizer`` is the tenant's policy as loaded when the context was opened; the
    run decides with that snapshot, as its scope was derived from it.
    """

    ctx: TenantContext
    tenant: Tenant
    plan: Plan
    period: str
    extra_roles: frozenset[str] = frozenset()
    authorizer: Authorizer | None = None


async def build_context(
    db: Database,
    *,
    tenant_id: str,
    principal_id: str,
    principal_kind: PrincipalKind = "user",
    initiator: Initiator = "user",
    permitted: Iterable[str] | None = None,
    correlation_id: str | None = None,
    run_id: str | None = None,
) -> RunGrant:
    """Derive a run's context, or refuse the run.

    Args:
        permitted: Capabilities the principal's roles allow; the scope is these
            within the plan's licences. ``None`` means every licensed capability.
        run_id: Given when resuming: the same run with a fresh allocation.

    Raises:
        NotFound: unknown tenant or plan.
        RunRefused: ``tenant_suspended`` or ``allowance_exhausted``.
    """
    standing = await MonthlyLedger(db).standing(tenant_id)
    tenant, plan, period = standing.tenant, standing.plan, standing.period
    if tenant.status != "active":
        raise RunRefused(
            "tenant_suspended",
            f"tenant {tenant.id!r} is suspended; an operator can resume it",
        )
    remaining = standing.remaining
    spent = remaining.exhausted
    if spent in ("tokens", "cost_microcents"):
        raise RunRefused(
            "allowance_exhausted",
            f"tenant {tenant.id!r} has used its monthly {spent.replace('_', ' ')} allowance"
            f" for {period}",
        )
    scope = plan.capabilities if permitted is None else plan.capabilities & set(permitted)
    ctx = derive_context(
        tenant_id=tenant.id,
        principal_id=principal_id,
        principal_kind=principal_kind,
        scope=scope,
        ceilings=plan.ceilings,
        remaining=remaining,
        initiator=initiator,
        features=tenant.features,
        correlation_id=correlation_id,
        run_id=run_id,
    )
    return RunGrant(ctx=ctx, tenant=tenant, plan=plan, period=period)

