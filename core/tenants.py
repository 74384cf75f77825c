"""Tenants and plans: who the customers are and what each one has bought."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from core.context import FeatureValue, RunCeilings
from core.db.engine import Database
from core.db.schema import plans, tenants
from core.errors import Conflict, InvalidInput, NotFound

TenantStatus = Literal["active", "suspended"]
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_id(kind: str, value: str) -> str:
    """Ids are short lowercase slugs: they appear in URLs, logs and audit origins."""
    if not _ID.match(value):
        raise InvalidInput(
            f"{kind} id must be 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            f"starting with a letter or digit; got {value!r}"
        )
    return value


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

    def __post_init__(self) -> None:
        check_id("plan", self.id)
        for name in PLAN_LIMITS:
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


PLAN_LIMITS = (
    "monthly_tokens",
    "monthly_cost_microcents",
    "monthly_tool_calls",
    "run_tokens",
    "run_tool_calls",
    "run_walltime_ms",
    "run_cost_microcents",
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
        **{name: int(getattr(row, name)) for name in PLAN_LIMITS},
    )


def _tenant(row: Any) -> Tenant:
    return Tenant(
        id=row.id,
        name=row.name,
        plan_id=row.plan_id,
        status=row.status,
        time_zone=row.time_zone,
        features=dict(row.features),
    )


async def create_plan(db: Database, plan: Plan) -> Plan:
    """Store a new plan; an existing id is a conflict."""
    now = datetime.now(UTC)
    values = {name: getattr(plan, name) for name in PLAN_LIMITS}
    try:
        async with db.begin() as conn:
            await conn.execute(
                plans.insert().values(
                    id=plan.id,
                    capabilities=sorted(plan.capabilities),
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
    except IntegrityError:
        raise Conflict(f"plan {plan.id!r} exists already") from None
    return plan


async def get_plan(db: Database, plan_id: str) -> Plan:
    """The plan ``plan_id``, or ``NotFound``."""
    return await db.run(lambda conn: plan_in(conn, plan_id), readonly=True)


def plan_in(conn: Connection, plan_id: str) -> Plan:
    """``get_plan`` inside the caller's transaction."""
    row = conn.execute(select(plans).where(plans.c.id == plan_id)).first()
    if row is None:
        raise NotFound(f"no plan {plan_id!r}")
    return _plan(row)


async def list_plans(db: Database) -> list[Plan]:
    """Every plan, by id."""
    async with db.read() as conn:
        rows = (await conn.execute(select(plans).order_by(plans.c.id))).all()
    return [_plan(row) for row in rows]


async def update_plan(
    db: Database,
    plan_id: str,
    *,
    limits: Mapping[str, int] | None = None,
    capabilities: Sequence[str] | None = None,
) -> Plan:
    """Change a plan's limits or capabilities; the change applies to the next run."""
    current = await get_plan(db, plan_id)
    values: dict[str, Any] = {}
    for name, value in (limits or {}).items():
        if name not in PLAN_LIMITS:
            raise InvalidInput(f"unknown plan limit {name!r}; known: {', '.join(PLAN_LIMITS)}")
        values[name] = value
    if capabilities is not None:
        values["capabilities"] = sorted(set(capabilities))
    merged = {name: getattr(current, name) for name in PLAN_LIMITS} | {
        k: v for k, v in values.items() if k != "capabilities"
    }
    caps = frozenset(values.get("capabilities", current.capabilities))
    new = Plan(id=plan_id, capabilities=caps, **merged)
    async with db.begin() as conn:
        await conn.execute(
            update(plans)
            .where(plans.c.id == plan_id)
            .values(updated_at=datetime.now(UTC), **values)
        )
    return new


async def create_tenant(
    db: Database,
    *,
    tenant_id: str,
    name: str,
    plan_id: str,
    time_zone: str = "UTC",
    features: Mapping[str, FeatureValue] | None = None,
) -> Tenant:
    """Create an active tenant on an existing plan."""
    check_id("tenant", tenant_id)
    if not name.strip():
        raise InvalidInput("tenant name must not be empty")
    _check_zone(time_zone)
    await get_plan(db, plan_id)
    now = datetime.now(UTC)
    tenant = Tenant(
        id=tenant_id,
        name=name,
        plan_id=plan_id,
        status="active",
        time_zone=time_zone,
        features=dict(features or {}),
    )
    try:
        async with db.begin() as conn:
            await conn.execute(
                tenants.insert().values(
                    id=tenant.id,
                    name=tenant.name,
                    plan_id=tenant.plan_id,
                    status=tenant.status,
                    time_zone=tenant.time_zone,
                    features=dict(tenant.features),
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(f"tenant {tenant_id!r} exists already") from None
    # Imported here because authorisation builds on tenants: every new tenant starts
    # with the default roles' permissions.
    from core.authz import seed_tenant

    await seed_tenant(db, tenant_id)
    return tenant


async def get_tenant(db: Database, tenant_id: str) -> Tenant:
    """The tenant ``tenant_id``, or ``NotFound``."""
    return await db.run(lambda conn: tenant_in(conn, tenant_id), readonly=True)


def tenant_in(conn: Connection, tenant_id: str) -> Tenant:
    """``get_tenant`` inside the caller's transaction."""
    row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
    if row is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return _tenant(row)


async def list_tenants(db: Database) -> list[Tenant]:
    """Every tenant, by id."""
    async with db.read() as conn:
        rows = (await conn.execute(select(tenants).order_by(tenants.c.id))).all()
    return [_tenant(row) for row in rows]


async def set_status(db: Database, tenant_id: str, status: TenantStatus) -> Tenant:
    """Suspend or resume a tenant; a suspended tenant's new runs are refused."""
    async with db.begin() as conn:
        result = await conn.execute(
            update(tenants)
            .where(tenants.c.id == tenant_id)
            .values(status=status, updated_at=datetime.now(UTC))
        )
    if result.rowcount == 0:
        raise NotFound(f"no tenant {tenant_id!r}")
    return await get_tenant(db, tenant_id)


def billing_period(tenant: Tenant, now: datetime | None = None) -> str:
    """The tenant's billing month (``YYYY-MM``) in its own time zone."""
    moment = (now or datetime.now(UTC)).astimezone(tenant.zone)
    return f"{moment.year:04d}-{moment.month:02d}"
