"""What the server does on its own: it signs audit tails, resumes runs of processes
that died and applies retention, without anyone asking."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Connection

from bots.settings import ServerSettings
from core.db.schema import runs
from core.retention import ENDED
from core.run_records import start_run
from core.runs import Lease, get_run
from core.settings import Settings
from standins.slack.api import SlackUser
from tests.scenarios.harness import Scenario, open_scenario, runs_of, thread
from tests.support.tenancy import plan

ADA = SlackUser("U1ADA")
BRISK = ServerSettings(upkeep_interval_s=0.05, retention_interval_s=0.05)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for the upkeep loop to have done ``what``; generous, so load cannot fail it."""
    for _ in range(600):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"upkeep never {what}")


async def test_a_finished_run_leaves_its_tenants_log_signed(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])

    await scenario.mention(t1, ADA.id, "hello there")
    await scenario.idle()

    checkpoint = await scenario.runtime.audit.latest_checkpoint("acme")
    report = await scenario.runtime.audit.verify("acme")
    assert checkpoint is not None and checkpoint.size == report.size
    assert report.ok and report.checkpoints_checked >= 1


async def test_events_written_outside_a_run_are_signed_within_the_interval(
        settings: Settings) -> None:
    async with open_scenario(settings, server=BRISK) as scenario:
        await scenario.tenant("acme")
        seq = await scenario.runtime.audit.record("acme", "roles.granted",
                                                  {"principal": "ops", "role": "admin"})

        async def signed() -> bool:
            latest = await scenario.runtime.audit.latest_checkpoint("acme")
            return latest is not None and latest.size >= seq

        await eventually(signed, "signed the tail")


async def test_a_run_whose_process_died_is_resumed_once_its_lease_expires(
        settings: Settings) -> None:
    async with open_scenario(settings, server=BRISK) as scenario:
        await scenario.tenant("acme")
        grant = await scenario.runtime.agent.open(tenant_id="acme", principal_id="ops",
                                                  principal_kind="service")
        gone = Lease("a-process-that-died", datetime.now(UTC) + timedelta(seconds=0.3))
        await scenario.db.run(start_run, grant.ctx, scenario.runtime.audit, prompt="hello",
                              model="sandbox", conversation_id=None, roles=(), lease=gone)

        async def finished() -> bool:
            record = await scenario.db.run(get_run, "acme", grant.ctx.run_id)
            return record.status in ENDED

        await eventually(finished, "resumed the run")
        record = await scenario.db.run(get_run, "acme", grant.ctx.run_id)
        assert record.status == "completed" and record.answer


async def test_retention_is_applied_by_the_server(settings: Settings) -> None:
    async with open_scenario(settings, server=BRISK) as scenario:
        await scenario.tenant("acme", plan("brief", retention_days=7))
        t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
        mention = await scenario.mention(t1, ADA.id, "hello there")
        await scenario.idle()
        assert thread(scenario.slack, t1.channel, mention)

        def age(conn: Connection) -> None:
            conn.execute(update(runs).values(updated_at=datetime.now(UTC) - timedelta(days=8)))

        await scenario.db.run(age)

        async def blanked() -> bool:
            return [run.prompt for run in await runs_of(scenario, "acme")] == [""]

        await eventually(blanked, "applied retention")
        swept = await scenario.runtime.audit.recent("acme", events={"retention.swept"})
        assert len(swept) == 1 and swept[0].fields["runs"] == 1
