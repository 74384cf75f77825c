"""Between an acknowledgement and its run: admitted after the burst, never lost to a shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from bots.settings import ServerSettings
from bots.slack import render
from bots.slack.records import slack_run_messages
from core.db.engine import reads
from core.runs import unfinished_runs
from core.settings import Settings
from installs.slack_store import SlackInstallationStore
from standins.slack.api import SlackStandIn, SlackUser
from tests.scenarios.harness import (
    APP_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    Scenario,
    open_scenario,
    runs_of,
    thread,
)

ADA = SlackUser("U1ADA")


PATIENT = ServerSettings(run_admission_max_delay_ms=3_600_000)
"""Runs wait for the requests in flight as long as any test lasts."""


@pytest.fixture
async def waiting(settings: Settings) -> AsyncIterator[Scenario]:
    async with open_scenario(settings, server=PATIENT) as running:
        yield running


def standin() -> SlackStandIn:
    return SlackStandIn(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, app_id=APP_ID)


@reads
def _answer_messages(conn: Connection) -> int:
    return int(conn.scalar(select(func.count()).select_from(slack_run_messages)) or 0)


async def answer_messages(scenario: Scenario) -> int:
    return await scenario.db.run(_answer_messages)


async def test_a_run_starts_once_the_requests_in_flight_are_answered(waiting: Scenario) -> None:
    await waiting.tenant("acme")
    t1 = await waiting.link_workspace("T1", "acme", users=[ADA])

    with waiting.executor.gate.serving():  # another request, still being answered
        sent = await waiting.command(t1, ADA.id, "what changed this week?")
        health = (await waiting.get("/healthz")).json()

        assert sent.status == 200 and sent.text == render.ACK_WORKING
        assert (health["runs_queued"], health["runs_running"]) == (1, 0)
        assert await runs_of(waiting, "acme") == []
        assert waiting.slack.calls("chat.postMessage") == []
    await waiting.idle()

    [run] = await runs_of(waiting, "acme")
    [root] = [m for m in waiting.slack.messages(t1.channel) if m.thread_ts is None]
    [answer] = thread(waiting.slack, t1.channel, root.ts)
    assert run.status == "completed" and answer.text == run.answer
    health = (await waiting.get("/healthz")).json()
    assert (health["runs_queued"], health["runs_running"], health["runs_in_flight"]) == (0, 0, 0)


async def test_a_request_still_queued_at_shutdown_is_answered_after_the_restart(
    settings: Settings,
) -> None:
    slack = standin()
    async with open_scenario(settings, slack, server=PATIENT) as first:
        await first.tenant("acme")
        t1 = await first.link_workspace("T1", "acme", users=[ADA])
        with first.executor.gate.serving():
            sent = await first.command(t1, ADA.id, "what changed this week?")
            await first.executor.shutdown()  # as the app's cleanup does, the run not started

        assert sent.status == 200 and first.executor.stats.parked == 1
        [queued] = await runs_of(first, "acme")
        assert (queued.status, queued.prompt) == ("queued", "what changed this week?")
        [root] = [m for m in first.slack.messages(t1.channel) if m.thread_ts is None]
        [opened] = thread(first.slack, t1.channel, root.ts)

    async with open_scenario(settings, slack, server=PATIENT) as second:
        await second.idle()
        [run] = await runs_of(second, "acme")
        [answer] = thread(second.slack, t1.channel, root.ts)

    assert run.id == queued.id and run.status == "completed"
    assert answer.ts == opened.ts and answer.text == run.answer
    assert opened.stream_state == "streaming" and answer.stream_state == "stopped", \
        "the stream the first process opened is stopped when the run is answered"
    # After the restart the run acts with the roles Slack vouched for when it was asked:
    # its tools are allowed, and it keeps the request's correlation id.
    assert "knowledge.search:" in answer.text and "refused_tools" not in run.detail
    assert run.correlation_id is not None and run.correlation_id.startswith("command:")
    assert run.correlation_id == queued.correlation_id


async def test_a_run_waiting_for_its_tenants_slot_at_shutdown_is_kept_as_queued(
    settings: Settings,
) -> None:
    async with open_scenario(settings, server=ServerSettings(runs_per_tenant=1)) as scenario:
        await scenario.tenant("acme")
        t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
        scenario.executor.grace_s = 0.05
        async with scenario.executor.slot("acme"):  # another run of the tenant, still going
            await scenario.mention(t1, ADA.id, "are you there?")
            for _ in range(500):
                if await answer_messages(scenario):
                    break
                await asyncio.sleep(0.01)
            await scenario.executor.shutdown()

        [run] = await runs_of(scenario, "acme")
        assert run.status == "queued" and run.prompt == "are you there?"
        assert [r.id for r in await scenario.db.run(unfinished_runs)] == [run.id]
        assert scenario.executor.stats.parked == 1


async def test_an_uninstall_still_queued_at_shutdown_is_carried_out(waiting: Scenario) -> None:
    await waiting.tenant("acme")
    t1 = await waiting.link_workspace("T1", "acme", users=[ADA])

    with waiting.executor.gate.serving():
        sent = await waiting.uninstalled(t1)
        await waiting.executor.shutdown()

    store = SlackInstallationStore(waiting.db, waiting.runtime.keyring)
    assert sent.status == 200 and waiting.executor.stats.parked == 1
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
