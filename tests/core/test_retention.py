"""Retention: content older than the plan's days goes; ids, totals and the audit log stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from core.agent import AgentService, RunOutcome
from core.audit.events import RETENTION_SWEPT
from core.db.engine import Database
from core.db.schema import checkpoint_segments, checkpoints, runs, tool_effects, usage_ledger
from core.retention import sweep
from core.settings import Settings
from core.vectors.tables import conversation_turns
from tests.core.test_agent import service, start
from tests.support.databases import fetch_all, fetch_value
from tests.support.tenancy import CounterCapability, plan, tenant_on

CONTENT = (checkpoints, checkpoint_segments, tool_effects, conversation_turns)


async def content_rows(db: Database, tenant_id: str) -> dict[str, int]:
    counts = {}
    for table in CONTENT:
        counts[table.name] = int(await fetch_value(db, select(func.count()).select_from(table)
                                                   .where(table.c.tenant_id == tenant_id)))
    counts["responses"] = int(await fetch_value(db, select(func.count()).select_from(
        usage_ledger).where(usage_ledger.c.tenant_id == tenant_id,
                            usage_ledger.c.response.is_not(None))))
    return counts


async def converse(svc: AgentService, tenant_id: str) -> RunOutcome:
    grant = await svc.open(tenant_id=tenant_id, principal_id="alice", extra_roles={"member"})
    return await svc.start(grant, "bump it", model="sandbox", conversation_id="c1")


async def test_a_sweep_removes_only_content_past_each_plans_retention(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan("short", retention_days=30))
    await tenant_on(db, "globex", plan("long", retention_days=365))
    svc = service(db, settings, CounterCapability())
    for tenant in ("acme", "globex"):
        assert (await converse(svc, tenant)).status == "completed"
    globex_before = await content_rows(db, "globex")
    assert all(await content_rows(db, "acme")) and all(globex_before.values())

    later = datetime.now(UTC) + timedelta(days=31)
    swept = await sweep(db, svc.audit, now=later)

    assert swept == {"acme": {"runs": 1, "turns": 2}}
    assert set((await content_rows(db, "acme")).values()) == {0}
    assert await content_rows(db, "globex") == globex_before
    [run] = await fetch_all(db, select(runs).where(runs.c.tenant_id == "acme"))
    assert (run.prompt, run.answer, run.status) == ("", None, "completed")
    assert run.input_tokens > 0 and run.cost_microcents > 0, "the bill stays"
    [event] = await svc.audit.recent("acme", events={RETENTION_SWEPT})
    assert (event.fields["runs"], event.fields["turns"], event.fields["retention_days"]) == (
        1, 2, 30)
    assert (await svc.audit.verify("acme")).ok


async def test_a_sweep_with_nothing_to_remove_writes_nothing(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan("short", retention_days=30))
    svc = service(db, settings, CounterCapability())
    assert (await start(svc, db, "acme")).status == "completed"
    size = (await svc.audit.verify("acme")).size

    assert await sweep(db, svc.audit) == {}, "the run is recent"
    assert await sweep(db, svc.audit, now=datetime.now(UTC) + timedelta(days=31)) != {}
    assert await sweep(db, svc.audit, now=datetime.now(UTC) + timedelta(days=32)) == {}
    assert (await svc.audit.verify("acme")).size == size + 1


async def test_a_run_still_going_keeps_its_transcript(db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan("short", retention_days=1))
    svc = service(db, settings, CounterCapability())
    assert (await start(svc, db, "acme")).status == "completed"

    def reopen(conn: Connection) -> None:
        conn.execute(runs.update().values(status="running"))

    await db.run(reopen)
    assert await sweep(db, svc.audit, now=datetime.now(UTC) + timedelta(days=2)) == {}
