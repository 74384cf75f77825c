"""Purging a tenant removes what it owns, its runs' checkpoints included, and only that."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.sql.schema import Table

from core.db.engine import Database
from core.db.schema import checkpoint_segments, checkpoints, runs, tenants, tool_effects
from core.purge import purge_tenant
from core.settings import Settings
from core.vectors.embedded import EmbeddedVectorAdmin
from tests.core.test_agent import service, start
from tests.support.databases import fetch_value
from tests.support.tenancy import CounterCapability, plan, tenant_on

OWNED = (runs, checkpoints, checkpoint_segments, tool_effects)


async def rows_of(db: Database, table: Table, tenant_id: str) -> int:
    return int(await fetch_value(
        db, select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)) or 0)


async def test_a_purge_removes_the_tenants_runs_and_checkpoints_and_no_one_elses(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    await tenant_on(db, "globex", plan())
    svc = service(db, settings, CounterCapability())
    for tenant in ("acme", "globex"):
        assert (await start(svc, db, tenant)).status == "completed"
    kept = {table.name: await rows_of(db, table, "globex") for table in OWNED}
    assert all(kept.values())

    counts = await purge_tenant(db, svc.audit, EmbeddedVectorAdmin(db), "acme",
                                operator="ops@example.com")

    assert counts["checkpoints"] == 1 and counts["checkpoint_segments"] >= 1
    assert [await rows_of(db, table, "acme") for table in OWNED] == [0] * len(OWNED)
    assert {table.name: await rows_of(db, table, "globex") for table in OWNED} == kept
    status = await fetch_value(db, select(tenants.c.status).where(tenants.c.id == "acme"))
    assert status == "suspended"
