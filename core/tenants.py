"""Tenants and plans: who the customers are and what each one has bought.

Every function runs inside the caller's transaction (``Database.run``)::

    await db.run(create_tenant, tenant_id="acme", name="Acme", plan_id="team")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from core.authz import seed_policy
from core.context import FeatureValue, RunCeilings, check_id
from core.db.engine import reads
from core.db.schema import plans, tenants
from core.errors import Conflict, InvalidInput, NotFound

TenantStatus = Literal["active", "suspended"]

PLAN_LIMITS = (
    "monthly_tokens",
    "monthly_cost_microcents",
    "monthly_tool_calls",
    "run_tokens",
    "run_tool_calls",
    "run_walltime_ms",
    "run_cost_microcents",
)


DEFAULT_RETENTION_DAYS = 90


@dataclass(frozen=True, slots=True)
class Plan:
    """What a tenant has bought: a monthly allowance, per-run ceilings, capabilities."""

    id: str
    monthly_tokens: int
    monthly_cost_microcents: int
    monthly_tool_calls: int
    run_tokens: int
    run_tool_calls: int
    run_walltime_ms: int
    run_cost_microcents: int
    capabilities: frozenset[str] = field(default_factory=frozenset)
    retention_days: int = DEFAULT_RETENTION_DAYS
    """How long run transcripts and conversation turns are kept."""

    def __post_init__(self) -> None:
        check_id("plan", self.id)
        for name in (*PLAN_LIMITS, "retention_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"plan {name} must be a non-negative integer, got {value!r}")

    @property
    def ceilings(self) -> RunCeilings:
        """The per-run ceilings, before the monthly allowance caps them."""
        return RunCeilings(
            tokens=self.run_tokens,
            tool_calls=self.run_tool_calls,
            walltime_ms=self.run_walltime_ms,
            cost_microcents=self.run_cost_microcents,
        )


@dataclass(frozen=True, slots=True)
class Tenant:
    """A SaaS customer account."""

    id: str
    name: str
    plan_id: str
    status: TenantStatus
    time_zone: str
    features: Mapping[str, FeatureValue]

    @property
    def zone(self) -> ZoneInfo:
        """The tenant's time zone, for its billing month and its digests."""
        return ZoneInfo(self.time_zone)


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}") from None
    return name


def _plan(row: Any) -> Plan:
    return Plan(
        id=row.id,
        capabilities=frozenset(row.capabilities),
        retention_days=int(row.retention_days),
        **{name: int(getattr(row, name)) for name in PLAN_LIMITS},
    )


def _tenant(row: Any) -> Tenant:
    return Tenant(id=row.id, name=row.name, plan_id=row.plan_id, status=row.status,
                  time_zone=row.time_zone, features=dict(row.features))


def create_plan(conn: Connection, plan: Plan) -> Plan:
    """Store a new plan; an existing id is a conflict."""
    now = datetime.now(UTC)
    try:
        conn.execute(plans.insert().values(
            id=plan.id, capabilities=sorted(plan.capabilities), created_at=now,
            updated_at=now, retention_days=plan.retention_days,
            **{name: getattr(plan, name) for name in PLAN_LIMITS},
        ))
    except IntegrityError:
        raise Conflict(f"plan {plan.id!r} exists already") from None
    return plan


@reads
def get_plan(conn: Connection, plan_id: str) -> Plan:
    """The plan ``plan_id``, or ``NotFound``."""
    row = conn.execute(select(plans).where(plans.c.id == plan_id)).first()
    if row is None:
        raise NotFound(f"no plan {plan_id!r}")
    return _plan(row)


@reads
def list_plans(conn: Connection) -> list[Plan]:
    """Every plan, by id."""
    return [_plan(row) for row in conn.execute(select(plans).order_by(plans.c.id))]


def update_plan(
    conn: Connection,
    plan_id: str,
    *,
    limits: Mapping[str, int] | None = None,
    capabilities: Sequence[str] | None = None,
    retention_days: int | None = None,
) -> Plan:
    """Change a plan's limits, capabilities or retention; it applies to the next run."""
    current = get_plan(conn, plan_id)
    for name in limits or {}:
        if name not in PLAN_LIMITS:
            raise InvalidInput(f"unknown plan limit {name!r}; known: {', '.join(PLAN_LIMITS)}")
    new = Plan(
        id=plan_id,
        capabilities=current.capabilities if capabilities is None else frozenset(capabilities),
        retention_days=current.retention_days if retention_days is None else retention_days,
        **({name: getattr(current, name) for name in PLAN_LIMITS} | dict(limits or {})),
    )
    conn.execute(
        update(plans).where(plans.c.id == plan_id).values(
            updated_at=datetime.now(UTC), capabilities=sorted(new.capabilities),
            retention_days=new.retention_days,
            **{name: getattr(new, name) for name in PLAN_LIMITS},
        )
    )
    return new


def create_tenant(
    conn: Connection,
    *,
    tenant_id: str,
    name: str,
    plan_id: str,
    time_zone: str = "UTC",
    features: Mapping[str, FeatureValue] | None = None,
) -> Tenant:
    """Create an active tenant on an existing plan, with the default roles' policy."""
    check_id("tenant", tenant_id)
    if not name.strip():
        raise InvalidInput("tenant name must not be empty")
    _check_zone(time_zone)
    get_plan(conn, plan_id)
    now = datetime.now(UTC)
    tenant = Tenant(id=tenant_id, name=name, plan_id=plan_id, status="active",
                    time_zone=time_zone, features=dict(features or {}))
    try:
        conn.execute(tenants.insert().values(
            id=tenant.id, name=tenant.name, plan_id=tenant.plan_id, status=tenant.status,
            time_zone=tenant.time_zone, features=dict(tenant.features), created_at=now,
            updated_at=now,
        ))
    except IntegrityError:
        raise Conflict(f"tenant {tenant_id!r} exists already") from None
    seed_policy(conn, tenant_id)
    return tenant


@reads
def get_tenant(conn: Connection, tenant_id: str) -> Tenant:
    """The tenant ``tenant_id``, or ``NotFound``."""
    row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
    if row is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return _tenant(row)


@reads
def list_tenants(conn: Connection) -> list[Tenant]:
    """Every tenant, by id."""
    return [_tenant(row) for row in conn.execute(select(tenants).order_by(tenants.c.id))]


def set_status(conn: Connection, tenant_id: str, status: TenantStatus) -> Tenant:
    """Suspend or resume a tenant; a suspended tenant's new runs are refused."""
    conn.execute(
        update(tenants).where(tenants.c.id == tenant_id)
        .values(status=status, updated_at=datetime.now(UTC))
    )
    return get_tenant(conn, tenant_id)


def billing_period(tenant: Tenant, now: datetime | None = None) -> str:
    """The tenant's billing month (``YYYY-MM``) in its own time zone."""
    moment = (now or datetime.now(UTC)).astimezone(tenant.zone)
    return f"{moment.year:04d}-{moment.month:02d}"
