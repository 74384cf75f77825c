"""The deployment on several processes: a PostgreSQL ``serve`` accepts, worker processes run.

The app runs in the test's process (as ``tenantry serve`` would, with ``runs_in`` left
to choose the workers on PostgreSQL); the workers are real OS processes
(``tests.support.worker_process``: ``bots.worker.work`` with a scripted model that
bumps a counter twice, then answers), delivering to the Slack stand-in over loopback.
"""

from __future__ import annotations

import asyncio
import random
import signal

import aiohttp
import pytest

from standins.slack.api import SlackStandIn, SlackUser
from tests.scenarios.conftest import WORKERS_BOUND
from tests.scenarios.harness import Scenario, runs_of, thread
from tests.support.tenancy import plan
from tests.support.workers import (
    Workers,
    month_matches_ledger,
    most_at_once,
    wait_until_answered,
)

pytestmark = pytest.mark.postgres

ADA = SlackUser("U1ADA")


async def ask(web: Scenario, count: int, *, tenant: str = "acme",
              team: str = "T1") -> list[str]:
    """``count`` mentions in one workspace; the ts of each (its thread)."""
    workspace = await web.link_workspace(team, tenant, users=[ADA])
    asked = [await web.mention(workspace, ADA.id, f"counter.bump please ({n})")
             for n in range(count)]
    await web.idle()  # accepted, queued
    return asked


def answers(slack: SlackStandIn, channel: str, asked: list[str]) -> list[list[str]]:
    """The app's messages in each thread, by text."""
    return [[m.text for m in thread(slack, channel, ts)] for ts in asked]


async def test_a_slack_request_is_queued_by_serve_and_answered_by_a_worker(
        web: Scenario, workers: Workers) -> None:
    await web.tenant("acme")
    [asked] = await ask(web, 1)
    [queued] = await runs_of(web, "acme")
    assert queued.status == "queued", "serve on PostgreSQL only accepts and queues"
    health = (await web.get("/healthz")).json()
    assert health["database"] == "ok" and health["queue"]["waiting"] == 1

    await workers.start(1, TENANTRY_WORKER_METRICS_PORT=str(port := free_port()))
    await wait_until_answered(web.db, 1)

    [run] = await runs_of(web, "acme")
    [[answer]] = answers(web.slack, "CT1", [asked])
    assert run.status == "completed" and answer == run.answer == "bumped twice"
    assert web.slack.calls("chat.postMessage") == [], "the answer is the one message opened"
    executed, applied = workers.effects_seen()
    assert sorted(applied.values()) == [1, 1] and executed == applied
    async with (aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/metrics") as scraped):
        worker_metrics = await scraped.text()
    web_metrics = (await web.get("/metrics")).text
    assert 'tenantry_runs_finished_total{outcome="completed"} 1.0' in worker_metrics
    assert 'tenantry_acknowledgements_total{status="200",transport="slack"} 1.0' in web_metrics
    assert "tenantry_queue_jobs_waiting 0.0" in web_metrics
    assert 'tenantry_tenant_tokens_month{tenant="acme"}' in web_metrics


@pytest.mark.parametrize("processes", [2, 4])
async def test_workers_share_one_tenants_burst_within_its_bound_and_its_month(
        web: Scenario, workers: Workers, processes: int) -> None:
    # The month pays for about ten of the sixteen runs: the rest halt or are refused.
    await web.tenant("acme", plan("tight", monthly_tokens=6_000,
                                  capabilities=frozenset({"counter.bump"})))
    asked = await ask(web, 16)
    await workers.start(processes)
    await wait_until_answered(web.db, 16)

    done = await runs_of(web, "acme")
    month, ledger = await month_matches_ledger(web.db, "acme")
    assert month == ledger and 0 < month <= 6_000, "the month is exact and never overspent"
    statuses = {r.status for r in done}
    assert "completed" in statuses and statuses & {"halted", "refused"}, statuses
    assert all(len(texts) == 1 for texts in answers(web.slack, "CT1", asked)), \
        "every run is answered once, in its one message"
    assert web.slack.calls("chat.postMessage") == []
    assert await most_at_once(web.db, "acme") <= WORKERS_BOUND
    _executed, applied = workers.effects_seen()
    assert set(applied.values()) <= {1}


async def test_workers_killed_at_random_points_lose_no_run_and_repeat_no_effect(
        web: Scenario, workers: Workers) -> None:
    await web.tenant("acme")
    await web.tenant("globex")
    asked = {"acme": await ask(web, 8, tenant="acme", team="T1"),
             "globex": await ask(web, 8, tenant="globex", team="T2")}
    await workers.start(2, TEST_MODEL_DELAY_S="0.25")
    rng = random.Random()
    kills = 0
    for _ in range(6):  # kill -9 a worker in the middle of a run; another takes its place
        victim = await workers.busy(web.db, rng)
        if victim is None:
            break
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        workers.kill(victim)
        kills += 1
        await workers.spawn(TEST_MODEL_DELAY_S="0.25")
    await wait_until_answered(web.db, 16, timeout_s=90)

    executed, applied = workers.effects_seen()
    for tenant, team in (("acme", "T1"), ("globex", "T2")):
        done = await runs_of(web, tenant)
        assert {r.status for r in done} == {"completed"}, "every run completes"
        assert len({r.cost_microcents for r in done}) == 1, \
            "each run is charged what an uninterrupted one is: settled calls are replayed"
        assert len({r.input_tokens + r.output_tokens for r in done}) == 1
        month, ledger = await month_matches_ledger(web.db, tenant)
        assert month == ledger
        assert [len(texts) for texts in answers(web.slack, f"C{team}", asked[tenant])] == \
            [1] * 8 and all(texts == [r.answer] for texts, r in
                            zip(answers(web.slack, f"C{team}", asked[tenant]), done,
                                strict=True))
    assert web.slack.calls("chat.postMessage") == [], "no second post"
    assert len(applied) == 32 and set(applied.values()) == {1}, "no effect applied twice"
    assert sum(executed.values()) - len(executed) <= kills, \
        "a resume repeats at most the call a kill cut between running and recording"
    every = [*await runs_of(web, "acme"), *await runs_of(web, "globex")]
    assert max(r.attempts for r in every) > 1, "some runs were really interrupted and resumed"


async def test_sigterm_stops_a_worker_and_another_resumes_its_run(
        web: Scenario, workers: Workers) -> None:
    await web.tenant("acme")
    [asked] = await ask(web, 1)
    [first] = await workers.start(1, TEST_MODEL_DELAY_S="1.0",
                                  TENANTRY_WORKER_SHUTDOWN_GRACE_S="0.2")
    for _ in range(100):
        [run] = await runs_of(web, "acme")
        if run.status == "running":
            break
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await first.wait() == 0
    [parked] = await runs_of(web, "acme")
    assert parked.status == "running", "stopped at its checkpoint, resumable"

    await workers.start(1, TEST_MODEL_DELAY_S="0.05")
    await wait_until_answered(web.db, 1)
    [run] = await runs_of(web, "acme")
    assert run.status == "completed" and run.attempts == 2
    assert answers(web.slack, "CT1", [asked]) == [[run.answer]]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
