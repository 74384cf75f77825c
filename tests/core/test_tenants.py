from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Connection

import core.tenants
from core.authz import seed_policy
from core.db.engine import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.tenants import (
    billing_period,
    create_plan,
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
    tenant = await db.run(get_tenant, "acme")
    assert (tenant.plan_id, tenant.status, tenant.time_zone) == ("team", "active", "UTC")
    assert (await db.run(get_plan, "team")).capabilities == {"a.b", "c.d"}
    assert [t.id for t in await db.run(list_tenants)] == ["acme"]
    with pytest.raises(Conflict):
        await db.run(create_tenant, tenant_id="acme", name="Again", plan_id="team")


async def test_bad_tenant_and_plan_values_are_refused_without_a_write(db: Database) -> None:
    await tenant_on(db, "acme", plan())
    with pytest.raises(InvalidInput):
        await db.run(create_tenant, tenant_id="Not OK", name="x", plan_id="team")
    with pytest.raises(InvalidInput):
        await db.run(create_tenant, tenant_id="ok", name=" ", plan_id="team")
    with pytest.raises(InvalidInput):
        await db.run(create_tenant, tenant_id="ok", name="x", plan_id="team", time_zone="Nowhere")
    with pytest.raises(NotFound):
        await db.run(create_tenant, tenant_id="ok", name="x", plan_id="gold")
    with pytest.raises(InvalidInput):
        plan(run_tokens=-1)
    with pytest.raises(InvalidInput):
        await db.run(update_plan, "team", limits={"speed": 3})
    assert [t.id for t in await db.run(list_tenants)] == ["acme"]
    with pytest.raises(NotFound):
        await db.run(set_status, "ghost", "suspended")


async def test_plan_changes_keep_what_was_not_named(db: Database) -> None:
    await tenant_on(db, "acme", plan())
    changed = await db.run(update_plan, "team", limits={"run_tokens": 5})
    assert changed.run_tokens == 5 and changed.monthly_tokens == plan().monthly_tokens
    assert (await db.run(get_plan, "team")).run_tokens == 5


async def test_the_billing_month_follows_the_tenant_time_zone(db: Database) -> None:
    await tenant_on(db, "acme", plan())
    await db.run(create_tenant, tenant_id="kiwi", name="Kiwi", plan_id="team",
                        time_zone="Pacific/Auckland")
    moment = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert billing_period(await db.run(get_tenant, "acme"), moment) == "2026-11"
    assert billing_period(await db.run(get_tenant, "kiwi"), moment) == "2026-12"


async def test_a_tenant_and_its_policy_are_created_together_or_not_at_all(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await db.run(create_plan, plan())

    def failing_seed(conn: Connection, tenant_id: str) -> int:
        raise RuntimeError("the policy could not be written")

    monkeypatch.setattr(core.tenants, "seed_policy", failing_seed)
    with pytest.raises(RuntimeError, match="policy"):
        await db.run(create_tenant, tenant_id="acme", name="Acme", plan_id="team")
    with pytest.raises(NotFound):
        await db.run(get_tenant, "acme")
    monkeypatch.undo()

    await db.run(create_tenant, tenant_id="acme", name="Acme", plan_id="team")
    assert await db.run(seed_policy, "acme") == 0, "the defaults came with the tenant"
