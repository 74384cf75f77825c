"""Digests as stored and scheduled: tenant filtering, validation, ids, missed firings, DST."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from core.admin import Admin
from core.agent import AgentService
from core.audit import events
from core.audit.log import recent_events
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from core.db.schema import metadata
from core.digests.destinations import SlackDestination, TeamsDestination, destination_from_json
from core.digests.records import (
    active_digests,
    add_digest,
    claim_firing,
    find_digest,
    get_digest,
    list_digests,
    schedule_version,
    set_digest_status,
)
from core.digests.schedule import (
    due_firings,
    firing_correlation,
    firing_run_id,
    firings_between,
    trigger,
)
from core.digests.tables import MAX_PROMPT
from core.errors import Conflict, InvalidInput, NotFound
from core.models import ModelFactory
from core.runs import recent_runs
from core.settings import Settings
from core.tenants import create_tenant, set_status
from tests.support.auditing import audit_log
from tests.support.tenancy import plan, tenant_on

CHANNEL = SlackDestination(team_id="T1", channel="C1")
UTC_ZONE = ZoneInfo("UTC")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
async def two(db: Database) -> Database:
    await tenant_on(db, "acme", plan())
    await tenant_on(db, "globex", plan())
    return db


async def add(db: Database, tenant_id: str = "acme", name: str = "Morning",
              cron: str = "30 8 * * mon-fri", prompt: str = "What happened yesterday?") -> Any:
    return await db.run(add_digest, tenant_id, name=name, cron=cron, prompt=prompt,
                        destination=CHANNEL)


async def test_a_digest_round_trips_and_is_found_only_in_its_tenant(two: Database) -> None:
    digest = await add(two)
    assert digest.status == "active" and digest.last_fired_at is None
    assert await two.run(get_digest, "acme", digest.id) == digest
    assert await two.run(find_digest, "acme", "Morning") == digest
    assert [d.id for d in await two.run(list_digests, "acme")] == [digest.id]
    assert await two.run(list_digests, "globex") == []
    with pytest.raises(NotFound):
        await two.run(get_digest, "globex", digest.id)
    with pytest.raises(NotFound):
        await two.run(find_digest, "globex", "Morning")
    with pytest.raises(NotFound):
        await two.run(set_digest_status, "globex", digest.id, "paused", "operator")
    assert (await two.run(get_digest, "acme", digest.id)).active
    with pytest.raises(Conflict):
        await add(two)
    await add(two, "globex")  # the same name in another tenant is another digest


@pytest.mark.parametrize(("cron", "words"), [
    ("30 8 * *", "5 fields"), ("30 8 * * * *", "5 fields"), ("61 8 * * *", "invalid cron"),
    ("30 8 * * 1-5", "names"), ("30 8 * * 0", "names"), ("x 8 * * *", "invalid cron"),
])
async def test_a_cron_must_be_five_valid_fields_with_named_weekdays(
        two: Database, cron: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        await add(two, cron=cron)
    assert await two.run(list_digests, "acme") == []


async def test_names_prompts_and_destinations_are_checked(two: Database) -> None:
    for bad in ({"name": " "}, {"name": "x" * 81}, {"prompt": ""},
                {"prompt": "x" * (MAX_PROMPT + 1)}):
        with pytest.raises(InvalidInput):
            await add(two, **bad)
    with pytest.raises(NotFound):
        await add(two, "nobody")
    with pytest.raises(InvalidInput):
        SlackDestination(team_id="T1", channel="#general")
    with pytest.raises(InvalidInput):
        TeamsDestination(entra_tenant_id="not-a-guid", conversation_id="19:x")
    with pytest.raises(InvalidInput):
        destination_from_json({"kind": "email", "to": "a@b.c"})
    teams = TeamsDestination(entra_tenant_id="3B9E4F6A-1C2D-4E5F-8A9B-0C1D2E3F4A5B",
                             conversation_id="19:x@thread.tacv2")
    assert destination_from_json(teams.as_json()) == teams
    assert teams.entra_tenant_id.islower()
    assert destination_from_json(CHANNEL.as_json()) == CHANNEL


async def test_operators_changes_are_audited_in_the_tenants_log(two: Database) -> None:
    audit = audit_log(two)
    admin = Admin(two, audit, Keyring([generate_key()]), by="cli:ops")
    digest = await admin.add_digest("acme", name="Weekly", cron="0 9 * * mon",
                                    prompt="Summarise the week", destination=CHANNEL)
    assert await admin.pause_digest("acme", digest.id)
    assert not await admin.pause_digest("acme", digest.id)  # already paused: no event
    assert await admin.resume_digest("acme", digest.id)
    await admin.remove_digest("acme", digest.id)
    found = await two.run(recent_events, "acme", 10)
    names = [e.event for e in reversed(found) if e.event.startswith("digest.")]
    assert names == [events.DIGEST_ADDED, events.DIGEST_PAUSED, events.DIGEST_RESUMED,
                     events.DIGEST_REMOVED]
    added = next(e for e in found if e.event == events.DIGEST_ADDED)
    assert added.fields["by"] == "cli:ops" and "Summarise" not in str(added.fields)
    assert not [e for e in await two.run(recent_events, "globex", 10)
                if e.event.startswith("digest.")]
    with pytest.raises(NotFound):
        await admin.remove_digest("globex", digest.id)


async def test_the_clock_loads_active_digests_of_active_tenants_and_sees_changes(
        two: Database) -> None:
    first = await add(two)
    other = await add(two, "globex", name="Other")
    before = await two.run(schedule_version)
    assert {s.digest.id for s in await two.run(active_digests)} == {first.id, other.id}

    await two.run(set_status, "globex", "suspended")
    assert await two.run(schedule_version) != before
    assert [s.digest.id for s in await two.run(active_digests)] == [first.id]
    marker = await two.run(schedule_version)
    assert await two.run(claim_firing, "acme", first.id, at("2030-01-01T08:30:00"))
    assert await two.run(schedule_version) == marker, "a firing is no schedule change"
    await two.run(set_digest_status, "acme", first.id, "paused", "operator")
    assert await two.run(active_digests) == []


async def test_a_firing_is_claimed_once_and_never_behind_a_later_one(two: Database) -> None:
    digest = await add(two)
    t1, t2 = at("2030-01-01T08:30:00"), at("2030-01-02T08:30:00")
    claims = await asyncio.gather(*(two.run(claim_firing, "acme", digest.id, t1)
                                    for _ in range(4)))
    assert sorted(claims) == [False, False, False, True]
    assert await two.run(claim_firing, "acme", digest.id, t2)
    assert not await two.run(claim_firing, "acme", digest.id, t1)
    assert not await two.run(claim_firing, "globex", digest.id, at("2031-01-01T00:00:00"))


def test_a_firings_ids_depend_only_on_the_digest_and_its_time() -> None:
    t = at("2030-01-01T08:30:00")
    assert firing_run_id("acme", "d1", t) == firing_run_id(
        "acme", "d1", t.astimezone(ZoneInfo("Europe/Berlin")))
    assert firing_run_id("acme", "d1", t) != firing_run_id("acme", "d1", t + timedelta(days=1))
    assert firing_run_id("acme", "d1", t) != firing_run_id("acme", "d2", t)
    assert firing_correlation("d1", t) == "digest:d1:2030-01-01T08:30:00Z"


async def test_a_run_id_that_exists_already_is_a_conflict_once_under_concurrency(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    agent = AgentService(db, settings, ModelFactory(settings), audit_log(db))
    run_id = firing_run_id("acme", "d1", at("2030-01-01T08:30:00"))

    async def start() -> str:
        grant = await agent.open(tenant_id="acme", principal_id="service:digests",
                                 principal_kind="service", initiator="cron", run_id=run_id)
        try:
            return (await agent.start(grant, "hello", model="sandbox")).status
        except Conflict:
            return "conflict"

    results = await asyncio.gather(*(start() for _ in range(4)))
    assert sorted(results) == ["completed", "conflict", "conflict", "conflict"]
    [run] = await db.run(recent_runs, "acme")
    assert run.id == run_id and run.initiator == "cron" and run.principal_kind == "service"
    started = [e for e in await db.run(recent_events, "acme", 50)
               if e.event == events.RUN_STARTED]
    assert len(started) == 1


def test_missed_firings_within_the_grace_coalesce_and_older_ones_are_skipped() -> None:
    now = at("2030-01-01T12:10:00")
    due = due_firings("0 * * * *", UTC_ZONE, at("2030-01-01T06:30:00"), now, timedelta(hours=2))
    assert due.fire_at == at("2030-01-01T12:00:00")
    assert due.coalesced == 2  # 11:00 and 12:00
    assert due.skipped == tuple(at(f"2030-01-01T{h:02d}:00:00") for h in (7, 8, 9, 10))

    nothing = due_firings("0 * * * *", UTC_ZONE, at("2030-01-01T12:00:00"), now,
                          timedelta(hours=2))
    assert (nothing.fire_at, nothing.coalesced, nothing.skipped) == (None, 0, ())
    stale = due_firings("0 * * * *", UTC_ZONE, at("2030-01-01T06:30:00"), now,
                        timedelta(minutes=5))
    assert stale.fire_at is None and len(stale.skipped) == 6


def test_a_cron_is_read_in_the_tenants_zone() -> None:
    berlin = trigger("30 8 * * mon-fri", ZoneInfo("Europe/Berlin"))
    [winter] = firings_between(berlin, at("2030-01-07T00:00:00"), at("2030-01-07T23:59:00"))
    [summer] = firings_between(berlin, at("2030-07-08T00:00:00"), at("2030-07-08T23:59:00"))
    assert (winter, summer) == (at("2030-01-07T07:30:00"), at("2030-07-08T06:30:00"))
    weekend = firings_between(berlin, at("2030-01-05T00:00:00"), at("2030-01-06T23:59:00"))
    assert weekend == []


@pytest.mark.parametrize(("zone", "spring", "fall"), [
    # Berlin: clocks go 02:00 -> 03:00 on 30 March 2025, 03:00 -> 02:00 on 26 October.
    ("Europe/Berlin", "2025-03-30", "2025-10-26"),
    # New York: 02:00 -> 03:00 on 9 March 2025, 02:00 -> 01:00 on 2 November.
    ("America/New_York", "2025-03-09", "2025-11-02"),
])
def test_daylight_saving_days_fire_as_the_cron_library_defines(
        zone: str, spring: str, fall: str) -> None:
    local = ZoneInfo(zone)
    cron = trigger("30 2 * * *", local)

    def day(date: str) -> list[datetime]:
        start = datetime.fromisoformat(f"{date}T00:00").replace(tzinfo=local)
        return firings_between(cron, start, start + timedelta(hours=23, minutes=59))

    # Spring forward: 02:30 does not exist. It fires once, at 02:30 read with the
    # offset before the change: an hour after the wall clock's 01:30, i.e. 03:30 new time.
    [skipped_hour] = day(spring)
    before = datetime.fromisoformat(f"{spring}T01:30").replace(tzinfo=local)
    assert skipped_hour - before.astimezone(UTC) == timedelta(hours=1)
    assert skipped_hour.astimezone(local).strftime("%H:%M") == "03:30"
    # Fall back: 02:30 happens twice (in New York 01:30 does; 02:30 once), each a firing.
    fired = day(fall)
    if zone == "Europe/Berlin":
        assert len(fired) == 2 and fired[1] - fired[0] == timedelta(hours=1)
        assert {f.astimezone(local).strftime("%H:%M") for f in fired} == {"02:30"}
        assert len({firing_run_id("acme", "d", f) for f in fired}) == 2
    else:
        assert len(fired) == 1 and fired[0].astimezone(local).strftime("%H:%M") == "02:30"
    # The days around them fire once, at 02:30 local time.
    for neighbour in (-1, 1):
        date = (datetime.fromisoformat(spring) + timedelta(days=neighbour)).date().isoformat()
        [once] = day(date)
        assert once.astimezone(local).strftime("%H:%M") == "02:30"


async def test_the_migration_creates_the_digests_table_as_declared(db: Database) -> None:
    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if "digests" in str(d)]

    assert await db.run(differences) == []


async def test_a_tenant_in_another_zone_validates_in_it(db: Database) -> None:
    await tenant_on(db, "acme", plan())
    await db.run(create_tenant, tenant_id="kiwi", name="Kiwi", plan_id="team",
                 time_zone="Pacific/Auckland")
    digest = await add(db, "kiwi")
    assert digest.cron == "30 8 * * mon-fri"
