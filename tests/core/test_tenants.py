from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.db.engine import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.tenants import (
    billing_period,
    create_tenant,
    get_plan,
    get_tenant,
    list_tenants,
    set_status,
    update_plan,
)
from tests.support.tenancy import plan, tenant_on


async def test_tenants_and_plans_round_trip(db: Database) -> None:
    await tenant_on(db, "acme", plan(capabilities=frozenset({"a.b", "c.d"})))
    tenant = await get_tenant(db, "acme")
    assert (tenant.plan_id, tenant.status, tenant.time_zone) == ("team", "active", "UTC")
    assert (await get_plan(db, "team")).capabilities == {"a.b", "c.d"}
    assert [t.id for t in await list_tenants(db)] == ["acme"]
    with pytest.raises(Conflict):
        await create_tenant(db, tenant_id="acme", name="Again", plan_id="team")


async def test_bad_tenant_and_plan_values_are_refused_without_a_write(db: Database) -> None:
    await tenant_on(db, "acme", plan())
    with pytest.raises(InvalidInput):
        await create_tenant(db, tenant_id="Not OK", name="x", plan_id="team")
    with pytest.raises(InvalidInput):
        await create_tenant(db, tenant_id="ok", name=" ", plan_id="team")
    with pytest.raises(InvalidInput):
        await create_tenant(db, tenant_id="ok", name="x", plan_id="team", time_zone="Nowhere")
    with pytest.raises(NotFound):
        await create_tenant(db, tenant_id="ok", name="x", plan_id="gold")
    with pytest.raises(InvalidInput):
        plan(run_tokens=-1)
    with pytest.raises(InvalidInput):
        await update_plan(db, "team", limits={"speed": 3})
    assert [t.id for t in await list_tenants(db)] == ["acme"]
    with pytest.raises(NotFound):
        await set_status(db, "ghost", "suspended")


async def test_plan_changes_keep_what_was_not_named(db: Database) -> None:
    await tenant_on(db, "acme", plan())
    changed = await update_plan(db, "team", limits={"run_tokens": 5})
    assert changed.run_tokens == 5 and changed.monthly_tokens == plan().monthly_tokens
    assert (await get_plan(db, "team")).run_tokens == 5


async def test_the_billing_month_follows_the_tenant_time_zone(db: Database) -> None:
    await tenant_on(db, "acme", plan())
    await create_tenant(db, tenant_id="kiwi", name="Kiwi", plan_id="team",
                        time_zone="Pacific/Auckland")
    moment = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert billing_period(await get_tenant(db, "acme"), moment) == "2026-11"
    assert billing_period(await get_tenant(db, "kiwi"), moment) == "2026-12"
