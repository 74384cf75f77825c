"""Firing a digest: one run and one post per firing, whoever fires it, and the refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bots.digests import DIGEST_PRINCIPAL, Fired, deliver_digest, fire_digest
from bots.posting import Notice
from bots.runtime import Runtime, open_runtime
from core.agent import RunOutcome
from core.audit import events
from core.audit.events import AuditEvent
from core.authz import grant as grant_role
from core.digests.destinations import Destination, SlackDestination
from core.digests.records import Digest, add_digest, get_digest, set_digest_status
from core.digests.schedule import iso
from core.errors import NotFound
from core.runs import get_run, recent_runs
from core.settings import Settings
from core.tenants import set_status
from installs.links import link, revoke
from tests.support.tenancy import plan, tenant_on

CHANNEL = SlackDestination(team_id="T1", channel="C1")
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@dataclass
class Recorder:
    """A poster that keeps what it was given; ``gone`` makes the destination vanish."""

    posts: list[tuple[str, Destination, Notice]] = field(default_factory=list)
    admins: list[Notice] = field(default_factory=list)
    gone: bool = False

    async def post(self, tenant_id: str, destination: Destination, notice: Notice) -> None:
        if self.gone:
            raise NotFound("channel_not_found")
        self.posts.append((tenant_id, destination, notice))

    async def tell_admins(self, tenant_id: str, destination: Destination,
                          notice: Notice) -> int:
        self.admins.append(notice)
        return 1


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings.model_copy(update={"embedder": "hashing"})) as rt:
        await tenant_on(rt.db, "acme", plan(
            run_tool_calls=1,
            capabilities=frozenset({"budget.status", "knowledge.search"})))
        await tenant_on(rt.db, "globex", plan())
        await rt.db.run(link, None, "T1", "acme", "U1")
        rt.posters["slack"] = Recorder()
        yield rt


def recorder(rt: Runtime) -> Recorder:
    poster = rt.posters["slack"]
    assert isinstance(poster, Recorder)
    return poster


async def digest_of(rt: Runtime, prompt: str = "What happened yesterday?",
                    cron: str = "*/5 * * * *") -> Digest:
    return await rt.db.run(add_digest, "acme", name="Morning", cron=cron, prompt=prompt,
                           destination=CHANNEL)


async def digest_events(rt: Runtime, tenant_id: str = "acme") -> list[AuditEvent]:
    found = await rt.audit.recent(tenant_id, 200)
    return [e for e in reversed(found) if e.event.startswith("digest.")]


async def test_a_firing_runs_as_the_digest_service_and_posts_its_answer(
        runtime: Runtime) -> None:
    digest = await digest_of(runtime)

    fired = await fire_digest(runtime, "acme", digest.id, NOW)

    assert fired.status == "posted" and fired.outcome is not None
    run = await runtime.db.run(get_run, "acme", fired.run_id)
    assert (run.initiator, run.principal_id, run.principal_kind) == (
        "cron", DIGEST_PRINCIPAL, "service")
    assert run.granted_roles == () and run.status == "completed"
    assert run.correlation_id == f"digest:{digest.id}:{NOW:%Y-%m-%dT%H:%M:%SZ}"
    [(tenant_id, destination, notice)] = recorder(runtime).posts
    assert (tenant_id, destination, notice.title) == ("acme", CHANNEL, "Morning")
    assert notice.kind == "answer" and "[sandbox" in notice.text
    assert recorder(runtime).admins == []
    assert (await runtime.db.run(get_digest, "acme", digest.id)).last_fired_at == NOW
    assert [e.event for e in await digest_events(runtime)] == [events.DIGEST_FIRED]


async def test_three_clocks_firing_at_once_make_one_run_and_one_post(runtime: Runtime) -> None:
    digest = await digest_of(runtime)

    fired = await asyncio.gather(*(fire_digest(runtime, "acme", digest.id, NOW)
                                   for _ in range(3)))
    again = await fire_digest(runtime, "acme", digest.id, NOW)

    assert sorted(f.status for f in [*fired, again]) == [
        "already_fired", "already_fired", "already_fired", "posted"]
    assert len({f.run_id for f in [*fired, again]}) == 1
    assert len(await runtime.db.run(recent_runs, "acme")) == 1
    assert len(recorder(runtime).posts) == 1


async def test_a_suspended_tenants_digest_pauses_without_running(runtime: Runtime) -> None:
    digest = await digest_of(runtime)
    await runtime.db.run(set_status, "acme", "suspended")

    fired = await fire_digest(runtime, "acme", digest.id, NOW)
    again = await fire_digest(runtime, "acme", digest.id, NOW + timedelta(minutes=5))

    assert (fired.status, fired.reason) == ("paused", "tenant_suspended")
    assert again.status == "paused"
    stored = await runtime.db.run(get_digest, "acme", digest.id)
    assert (stored.status, stored.paused_reason) == ("paused", "tenant_suspended")
    assert await runtime.db.run(recent_runs, "acme") == []
    assert recorder(runtime).posts == []
    [paused] = await digest_events(runtime)
    assert paused.event == events.DIGEST_PAUSED
    assert paused.fields["reason"] == "tenant_suspended" and paused.fields["by"] == DIGEST_PRINCIPAL


async def test_a_revoked_or_unknown_destination_pauses_the_digest_audited(
        runtime: Runtime) -> None:
    digest = await digest_of(runtime)
    await runtime.db.run(revoke, None, "T1")

    fired = await fire_digest(runtime, "acme", digest.id, NOW)

    assert (fired.status, fired.reason) == ("paused", "destination_revoked")
    [paused] = await digest_events(runtime)
    assert paused.fields["detail"] == "link_revoked"
    assert await runtime.db.run(recent_runs, "acme") == []

    other = await runtime.db.run(add_digest, "acme", name="Elsewhere", cron="0 * * * *",
                                 prompt="hi", destination=SlackDestination("T9", "C9"))
    assert (await fire_digest(runtime, "acme", other.id, NOW)).reason == "destination_revoked"


async def test_a_channel_the_app_cannot_post_in_pauses_the_digest_after_its_run(
        runtime: Runtime) -> None:
    digest = await digest_of(runtime)
    recorder(runtime).gone = True

    fired = await fire_digest(runtime, "acme", digest.id, NOW)

    assert fired.status == "posted"
    stored = await runtime.db.run(get_digest, "acme", digest.id)
    assert (stored.status, stored.paused_reason) == ("paused", "destination_revoked")


async def test_a_paused_or_unknown_digest_does_not_fire(runtime: Runtime) -> None:
    digest = await digest_of(runtime)
    await runtime.db.run(set_digest_status, "acme", digest.id, "paused", "operator")

    assert (await fire_digest(runtime, "acme", digest.id, NOW)).status == "paused"
    assert (await fire_digest(runtime, "globex", digest.id, NOW)).status == "unknown"
    assert (await fire_digest(runtime, "acme", "nope", NOW)).status == "unknown"
    assert await runtime.db.run(recent_runs, "acme") == []


async def test_missed_firings_beyond_the_grace_are_audited_as_skipped(
        runtime: Runtime) -> None:
    digest = await digest_of(runtime, cron="0 * * * *")
    base = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    assert (await fire_digest(runtime, "acme", digest.id, base, now=base)).status == "posted"

    # The clock was down for five hours and back just in time for 6:00 after ``base``:
    # with an hour's grace, that firing stands for 5:00 too; 1:00 to 4:00 are skipped.
    now = base + timedelta(hours=6)
    fired = await fire_digest(runtime, "acme", digest.id, base + timedelta(hours=6), now=now)
    late = await fire_digest(runtime, "acme", digest.id, base + timedelta(hours=7),
                             now=base + timedelta(hours=9))

    assert fired.status == "posted" and late.status == "skipped"
    found = await digest_events(runtime)
    skipped = [e for e in found if e.event == events.DIGEST_SKIPPED]
    hour = [iso(base + timedelta(hours=h)) for h in range(8)]
    assert [(e.fields["count"], e.fields["first"], e.fields["last"]) for e in skipped] == [
        (4, hour[1], hour[4]), (1, hour[7], hour[7])]
    fired_events = [e for e in found if e.event == events.DIGEST_FIRED]
    assert [e.fields["coalesced"] for e in fired_events] == [1, 2]
    assert len(await runtime.db.run(recent_runs, "acme")) == 2


async def test_a_halted_digest_is_posted_and_told_to_the_admins(runtime: Runtime) -> None:
    await runtime.db.run(grant_role, "acme", DIGEST_PRINCIPAL, "member")
    digest = await digest_of(runtime, "Check budget.status, and what does the runbook say?")

    fired = await fire_digest(runtime, "acme", digest.id, NOW)

    assert fired.outcome is not None and fired.outcome.status == "halted"
    [(_, _, notice)] = recorder(runtime).posts
    assert notice.kind == "halt" and "tool-call limit" in notice.text
    assert f"tenantry runs resume {fired.run_id}" in notice.text
    assert recorder(runtime).admins == [notice]


async def test_a_refused_digest_is_posted_and_told_to_the_admins(runtime: Runtime) -> None:
    digest = await runtime.db.run(add_digest, "globex", name="Tiny", cron="0 * * * *",
                                  prompt="hello", destination=SlackDestination("T2", "C2"))
    await runtime.db.run(link, None, "T2", "globex", "U2")
    from core.tenants import update_plan

    await runtime.db.run(update_plan, "team", limits={"run_tokens": 1})

    fired = await fire_digest(runtime, "globex", digest.id, NOW)

    assert (fired.status, fired.reason) == ("refused", "run_ceiling_too_small")
    [(_, _, notice)] = recorder(runtime).posts
    assert notice.kind == "refusal" and recorder(runtime).admins == [notice]


async def test_a_digest_run_resumed_after_a_crash_is_posted_by_its_deliverer(
        runtime: Runtime) -> None:
    digest = await digest_of(runtime)
    fired: Fired = await fire_digest(runtime, "acme", digest.id, NOW)
    recorder(runtime).posts.clear()
    assert fired.outcome is not None

    await deliver_digest(runtime, fired.outcome)
    await deliver_digest(runtime, RunOutcome(run_id="not-a-digest", tenant_id="acme",
                                             status="completed", model="sandbox"))

    [(_, _, notice)] = recorder(runtime).posts
    assert notice.kind == "answer"
