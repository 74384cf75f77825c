"""The digest clock: loads active schedules, reloads on change, fires only through its callback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bots.clock import DigestClock
from core.db.engine import Database
from core.digests.destinations import SlackDestination
from core.digests.records import add_digest, claim_firing, set_digest_status
from core.tenants import create_tenant, set_status
from tests.support.tenancy import plan, tenant_on

CHANNEL = SlackDestination(team_id="T1", channel="C1")


class Calls:
    """The clock's callback, recording every firing."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, str, datetime]] = []
        self.seen = asyncio.Event()

    async def __call__(self, tenant_id: str, digest_id: str, fire_time: datetime) -> None:
        self.fired.append((tenant_id, digest_id, fire_time))
        self.seen.set()


@pytest.fixture
async def tenants(db: Database) -> Database:
    await tenant_on(db, "acme", plan())
    await db.run(create_tenant, tenant_id="berlin", name="Berlin", plan_id="team",
                 time_zone="Europe/Berlin")
    return db


def clock(db: Database, calls: Calls, now: datetime) -> DigestClock:
    return DigestClock(db, calls, grace=timedelta(hours=1), reload_s=3600, now=lambda: now)


async def add(db: Database, tenant_id: str, name: str, cron: str) -> str:
    digest = await db.run(add_digest, tenant_id, name=name, cron=cron, prompt="hi",
                          destination=CHANNEL)
    return digest.id


async def test_it_loads_each_active_digest_as_a_cron_job_in_its_tenants_zone(
        tenants: Database) -> None:
    first = await add(tenants, "acme", "a", "30 8 * * *")
    second = await add(tenants, "berlin", "b", "30 8 * * *")
    paused = await add(tenants, "acme", "c", "0 9 * * *")
    await tenants.run(set_digest_status, "acme", paused, "paused", "operator")
    calls = Calls()

    async with clock(tenants, calls, datetime.now(UTC)) as running:
        assert set(running.entries) == {first, second}
        job = running.scheduler.get_job(f"digest:{second}")
        assert job is not None and str(job.trigger.timezone) == "Europe/Berlin"
        assert job.coalesce and job.misfire_grace_time == 3600
        assert running.scheduler.get_job(f"digest:{paused}") is None
    assert calls.fired == []


async def test_it_reloads_when_digests_or_tenants_change_and_only_then(
        tenants: Database) -> None:
    calls = Calls()
    async with clock(tenants, calls, datetime.now(UTC)) as running:
        assert running.entries == {}
        assert not await running.reload()
        added = await add(tenants, "acme", "a", "30 8 * * *")
        assert await running.reload() and set(running.entries) == {added}
        assert not await running.reload()

        await tenants.run(set_digest_status, "acme", added, "paused", "operator")
        assert await running.reload() and running.entries == {}
        assert running.scheduler.get_job(f"digest:{added}") is None

        await tenants.run(set_digest_status, "acme", added, "active")
        await tenants.run(set_status, "acme", "suspended")
        assert await running.reload() and running.entries == {}


async def test_a_tick_fires_the_scheduled_time_in_the_tenants_zone(tenants: Database) -> None:
    digest = await add(tenants, "berlin", "b", "30 8 * * mon-fri")
    # 08:30 in Berlin on a winter Monday is 07:30 UTC; the job runs a little after it.
    now = datetime(2030, 1, 7, 7, 30, 20, tzinfo=UTC)
    calls = Calls()

    async with clock(tenants, calls, now) as running:
        calls.fired.clear()  # the catch-up at start: the digest was created long before
        await running.tick(digest)
        await running.tick("removed-digest")

    assert calls.fired == [("berlin", digest, datetime(2030, 1, 7, 7, 30, tzinfo=UTC))]
    local = calls.fired[0][2].astimezone(ZoneInfo("Europe/Berlin"))
    assert local.strftime("%a %H:%M") == "Mon 08:30"


async def test_firings_missed_while_it_was_down_are_caught_up_once_at_start(
        tenants: Database) -> None:
    digest = await add(tenants, "acme", "a", "0 * * * *")
    await tenants.run(claim_firing, "acme", digest, datetime(2030, 1, 1, 6, tzinfo=UTC))
    calls = Calls()

    async with clock(tenants, calls, datetime(2030, 1, 1, 9, 20, tzinfo=UTC)) as running:
        await running.reload()

    assert calls.fired == [("acme", digest, datetime(2030, 1, 1, 9, tzinfo=UTC))]


async def test_apscheduler_runs_the_job_and_the_callback_hears_the_fire_time(
        tenants: Database) -> None:
    digest = await add(tenants, "acme", "a", "*/5 * * * *")
    now = datetime.now(UTC)
    calls = Calls()

    async with clock(tenants, calls, now) as running:
        calls.fired.clear()  # a catch-up at start, if the digest was just due
        calls.seen.clear()
        running.scheduler.modify_job(f"digest:{digest}", next_run_time=datetime.now(UTC))
        await asyncio.wait_for(calls.seen.wait(), timeout=5)

    [(tenant_id, digest_id, fire_time)] = calls.fired
    assert (tenant_id, digest_id) == ("acme", digest)
    assert fire_time <= now and now - fire_time < timedelta(minutes=5)
    assert fire_time.minute % 5 == 0 and fire_time.second == 0
