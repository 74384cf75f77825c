"""Digests on PostgreSQL: ``tenantry clock`` processes only queue, worker processes fire.

Three clocks are started by mistake, as real ``tenantry clock`` processes; each catches
up the digest's latest firing at start and queues it. Worker processes (as in
``test_workers``) take the jobs: one run, one post, one effect per tool step. The app
(``serve`` on PostgreSQL) runs no clock of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import Connection

from bots.digests import DIGEST_PRINCIPAL
from bots.jobs.claims import Claim
from bots.jobs.digest import digest_job
from bots.jobs.queue import QueuedJob
from bots.web import CLOCK
from core.admin import Admin
from core.audit import events
from core.authz import grant as grant_role
from core.digests.destinations import SlackDestination
from core.digests.records import Digest, claim_firing
from core.digests.schedule import firing_run_id, iso
from core.digests.tables import digests
from standins.slack.api import SlackUser
from tests.scenarios.harness import Scenario, audit_events, runs_of
from tests.support.databases import fetch_value
from tests.support.workers import ROOT, Workers, wait_until_answered

pytestmark = pytest.mark.postgres

ADA = SlackUser("U1ADA")


async def hourly_digest(web: Scenario) -> Digest:
    """acme's hourly digest into #general of T1, made two hours ago (so its latest
    firing is due), whose service account may bump the counter."""
    await web.tenant("acme")
    workspace = await web.link_workspace("T1", "acme", users=[ADA])
    await web.db.run(grant_role, "acme", DIGEST_PRINCIPAL, "member")
    admin = Admin(web.db, web.runtime.audit, web.runtime.keyring, by="cli:ops")
    digest = await admin.add_digest("acme", name="Hourly", cron="0 * * * *",
                                    prompt="counter.bump twice, please",
                                    destination=SlackDestination("T1", workspace.channel))

    def backdate(conn: Connection) -> None:
        conn.execute(update(digests).where(digests.c.id == digest.id)
                     .values(created_at=datetime.now(UTC) - timedelta(hours=2)))

    await web.db.run(backdate)
    return digest


@pytest.fixture
async def clocks(workers: Workers) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for proc in started:
        if proc.returncode is None:
            proc.terminate()
    for proc in started:
        async with asyncio.timeout(20):
            await proc.wait()


async def start_clock(workers: Workers, started: list[asyncio.subprocess.Process]) -> None:
    env = workers.env() | {"TENANTRY_DIGEST_RELOAD_S": "0.5"}
    started.append(await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from bots.cli import main; main()", "clock", cwd=ROOT,
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True))


async def digest_jobs_queued(web: Scenario) -> int:
    return int(await fetch_value(web.db, text(
        "SELECT count(*) FROM procrastinate_events WHERE type = 'deferred'")) or 0)


async def test_three_clocks_queue_a_firing_that_workers_run_and_post_once(
        web: Scenario, workers: Workers, clocks: list[asyncio.subprocess.Process]) -> None:
    assert CLOCK not in web.app, "serve on PostgreSQL leaves the firing to tenantry clock"
    await hourly_digest(web)
    for _ in range(3):
        await start_clock(workers, clocks)
    for _ in range(300):  # every clock caught up the due firing and queued it
        if await digest_jobs_queued(web) >= 1 and all(
                p.returncode is None for p in clocks):
            await asyncio.sleep(2)
            break
        await asyncio.sleep(0.1)
    assert all(p.returncode is None for p in clocks), "the clocks keep running"
    assert await runs_of(web, "acme") == [], "a clock only queues"
    for proc in clocks:  # stopped by SIGTERM, each having queued the firing
        proc.terminate()
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
        assert proc.stderr is not None
        assert "digest firing queued" in (await proc.stderr.read()).decode()

    await workers.start(2)
    await wait_until_answered(web.db, 1)
    await asyncio.sleep(1)  # any other job of the same firing has had its turn

    [run] = await runs_of(web, "acme")
    assert (run.initiator, run.principal_id, run.status) == ("cron", DIGEST_PRINCIPAL,
                                                             "completed")
    [posted] = web.slack.messages("CT1")
    assert "*Hourly*" in posted.text and "bumped twice" in posted.text
    _executed, applied = workers.effects_seen()
    assert sorted(applied.values()) == [1, 1], "each tool step applied once"
    fired = [e for e in await audit_events(web, "acme") if e.event == events.DIGEST_FIRED]
    assert len(fired) == 1 and fired[0].run_id == run.id


async def test_a_retried_digest_job_finishes_the_firing_its_dead_worker_claimed(
        web: Scenario) -> None:
    """A worker died after claiming the firing, before its run opened: the job's retry
    runs it; a second retry finds it delivered and posts nothing more."""
    digest = await hourly_digest(web)
    runtime = web.runtime  # serve's: Slack's poster and the digest deliverer
    fire_time = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert await web.db.run(claim_firing, "acme", digest.id, fire_time)
    claim = Claim.of("digest", "acme", {"digest_id": digest.id, "fire_time": iso(fire_time),
                                        "seen_at": iso(fire_time)})

    await digest_job(runtime, QueuedJob(claim, job_id=1, attempts=0))
    assert await runs_of(web, "acme") == [], "a first attempt finds the firing claimed"
    await digest_job(runtime, QueuedJob(claim, job_id=1, attempts=1))
    await digest_job(runtime, QueuedJob(claim, job_id=1, attempts=2))

    [run] = await runs_of(web, "acme")
    assert run.id == firing_run_id("acme", digest.id, fire_time)
    assert run.status == "completed" and run.detail.get("delivered")
    assert len(web.slack.messages("CT1")) == 1
