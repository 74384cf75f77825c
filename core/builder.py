"""The one builder of ``TenantContext``: tenant, plan, month-to-date usage and policy in."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from core.authz import Authorizer, Policy, load_policy
from core.budget.ledger import Standing, standing
from core.context import Initiator, PrincipalKind, TenantContext, derive_context
from core.db.engine import Database, reads
from core.errors import RunRefused
from core.tenants import Plan, Tenant


@dataclass(frozen=True, slots=True)
class RunGrant:
    """A context plus the tenant records and the policy it was derived from.

    ``authorizer`` is the tenant's policy as loaded when the context was built; the
    run decides with that snapshot, as its scope was derived from it.
    """

    ctx: TenantContext
    tenant: Tenant
    plan: Plan
    period: str
    authorizer: Authorizer
    extra_roles: frozenset[str] = frozenset()


@reads
def _standing_and_policy(conn: Connection, tenant_id: str, principal_id: str
                         ) -> tuple[Standing, Policy]:
    return standing(conn, tenant_id), load_policy(conn, tenant_id, principal_id)


async def build_context(
    db: Database,
    *,
    tenant_id: str,
    principal_id: str,
    principal_kind: PrincipalKind = "user",
    initiator: Initiator = "user",
    extra_roles: Iterable[str] = (),
    correlation_id: str | None = None,
    run_id: str | None = None,
) -> RunGrant:
    """Derive a run's context from one snapshot of the tenant, or refuse the run.

    The scope is the plan's licences that the principal's roles allow.

    Args:
        extra_roles: Roles vouched for by the platform for this run only.
        run_id: Given when resuming: the same run with a fresh allocation.

    Raises:
        NotFound: unknown tenant or plan.
        RunRefused: ``tenant_suspended`` or ``allowance_exhausted``.
    """
    held, policy = await db.run(_standing_and_policy, tenant_id, principal_id)
    tenant, plan, period = held.tenant, held.plan, held.period
    if tenant.status != "active":
        raise RunRefused(
            "tenant_suspended",
            f"tenant {tenant.id!r} is suspended; an operator can resume it",
        )
    remaining = held.remaining
    spent = remaining.exhausted
    if spent in ("tokens", "cost_microcents"):
        raise RunRefused(
            "allowance_exhausted",
            f"tenant {tenant.id!r} has used its monthly {spent.replace('_', ' ')} allowance"
            f" for {period}",
        )
    ctx = derive_context(
        tenant_id=tenant.id,
        principal_id=principal_id,
        principal_kind=principal_kind,
        scope=plan.capabilities,
        ceilings=plan.ceilings,
        remaining=remaining,
        initiator=initiator,
        features=tenant.features,
        correlation_id=correlation_id,
        run_id=run_id,
    )
    roles = frozenset(extra_roles)
    authorizer = Authorizer(ctx, policy, roles)
    ctx = dataclasses.replace(ctx, scope=authorizer.permitted_capabilities(ctx.scope))
    return RunGrant(ctx=ctx, tenant=tenant, plan=plan, period=period, authorizer=authorizer,
                    extra_roles=roles)
