"""Resume on PostgreSQL: the web process only queues the halted run again; a worker resumes it.

Runs halt at a plan of one tool call per run (the worker's scripted model bumps a
counter twice, then answers); the plan is raised, and a Resume pressed through the
HTTP API, Slack or Teams puts the run back on the queue, once however many presses, audited
as asked for by the presser. A real worker process resumes it (``run.started``,
resumed, attempt 2), each tool step's effect applied once, and delivers the outcome
where the run was asked.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bots.settings import ServerSettings
from bots.slack import render
from bots.teams import render as teams_render
from core.audit import events
from core.runs import RunRecord
from core.settings import Settings
from core.tenants import update_plan
from standins.slack.api import SlackUser
from standins.teams.activities import TeamsUser, group_chat
from standins.teams.scenario import TeamsSide
from tests.scenarios.api_client import call, issue_key
from tests.scenarios.harness import Scenario, audit_events, open_scenario, runs_of, thread
from tests.scenarios.test_slack_budget import resume_value
from tests.support.tenancy import plan
from tests.support.workers import Workers

pytestmark = pytest.mark.postgres

ADA = SlackUser("U1ADA")
ORG = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
LIN = TeamsUser("Lin")
GRACE = TeamsUser("Grace")


async def delivered(web: Scenario, status: str, *, timeout_s: float = 60) -> RunRecord:
    """The tenant's one run, once it is ``status`` and its outcome was delivered."""
    for _ in range(int(timeout_s * 10)):
        [run] = await runs_of(web, "acme")
        if run.status == status and run.detail.get("delivered"):
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"the run did not become {status} and delivered: {run.status}")


async def resumptions(web: Scenario) -> tuple[list[bool], list[str]]:
    """Whether each ``run.started`` was a resumption, and who asked for each resume."""
    started = await audit_events(web, "acme", events.RUN_STARTED)
    asked = await audit_events(web, "acme", events.RUN_RESUME_REQUESTED)
    return ([bool(e.fields.get("resumed")) for e in started],
            [str(e.fields["principal"]) for e in asked])


def applied_by_workers(workers: Workers) -> list[int]:
    """How many times each tool step's effect was applied, after checking that only the
    worker processes executed the tool."""
    executed, applied = workers.effects_seen()
    pids = {int(line.split()[3]) for line in workers.effects.read_text().splitlines()}
    assert pids <= {p.pid for p in workers.procs} and os.getpid() not in pids
    assert executed == applied, "no tool step executed twice"
    return sorted(applied.values())


async def test_an_api_resume_pressed_twice_at_once_is_resumed_once_by_a_worker(
        web: Scenario, workers: Workers) -> None:
    await web.tenant("acme", plan("tight", run_tool_calls=1))
    key = await issue_key(web, "acme", "svc:backend", role="member")
    await workers.start(1)
    run_id = (await call(web, "POST", "/v1/runs", key,
                         json={"prompt": "bump it twice"})).body["id"]
    halted = await delivered(web, "halted")
    assert (halted.detail["halt"]["ceiling"], halted.tool_calls) == ("tool_calls", 1)

    await web.db.run(update_plan, "tight", limits={"run_tool_calls": 5})
    presses = await asyncio.gather(*(
        call(web, "POST", f"/v1/runs/{run_id}/resume", key) for _ in range(2)))

    assert sorted(p.status for p in presses) == [202, 409]
    [accepted] = [p for p in presses if p.status == 202]
    assert accepted.body == {"id": run_id, "status": "queued"}
    await web.idle()
    done = await delivered(web, "completed")
    assert (done.answer, done.attempts) == ("bumped twice", 2)
    assert await resumptions(web) == ([False, True], ["svc:backend"])
    [_first, again] = await audit_events(web, "acme", events.RUN_STARTED)
    assert again.fields["attempt"] == 2
    assert applied_by_workers(workers) == [1, 1], "each tool step applied once"
    late = await call(web, "POST", f"/v1/runs/{run_id}/resume", key)
    assert late.status == 409


async def test_a_slack_resume_is_finished_by_a_worker_in_the_same_answer_message(
        web: Scenario, workers: Workers) -> None:
    await web.tenant("acme", plan("tight", run_tool_calls=1))
    t1 = await web.link_workspace("T1", "acme", users=[ADA])
    mention = await web.mention(t1, ADA.id, "counter.bump please")
    await web.idle()
    await workers.start(1)
    await delivered(web, "halted")
    [answer] = thread(web.slack, t1.channel, mention)
    assert "per-request tool-call limit (limit 1, used 1)" in answer.text

    await web.db.run(update_plan, "tight", limits={"run_tool_calls": 5})
    presses = await asyncio.gather(*(
        web.press(t1, ADA.id, render.RESUME_ACTION, resume_value(answer),
                  channel=t1.channel, message_ts=answer.ts) for _ in range(2)))
    await web.idle()

    assert [p.status for p in presses] == [200, 200]
    done = await delivered(web, "completed")
    assert (done.answer, done.attempts) == ("bumped twice", 2)
    assert await resumptions(web) == ([False, True], [f"slack:T1:{ADA.id}"])
    [final] = thread(web.slack, t1.channel, mention)
    assert final.ts == answer.ts, "the halted message itself carries the answer"
    assert (final.text, final.blocks) == ("bumped twice", ())
    assert web.slack.calls("chat.postMessage") == [], "nothing posted besides that message"
    assert applied_by_workers(workers) == [1, 1], "each tool step applied once"


@pytest.fixture
async def teams_web(pg_settings: Settings) -> AsyncIterator[Scenario]:
    """``serve`` on PostgreSQL with Teams: runs go to the queue."""
    async with open_scenario(pg_settings, server=ServerSettings(runs_in="auto"),
                             teams=True) as scenario:
        yield scenario


def teams_env(side: TeamsSide) -> dict[str, str]:
    """The worker's Teams settings: the web process's, as a deployment shares them."""
    settings = side.settings
    assert settings.app_password is not None
    return {"TENANTRY_TEAMS_APP_ID": settings.app_id or "",
            "TENANTRY_TEAMS_APP_PASSWORD": settings.app_password.get_secret_value(),
            "TENANTRY_TEAMS_APP_TENANT_ID": settings.app_tenant_id or "",
            "TENANTRY_TEAMS_JWKS_URL": settings.jwks_url or "",
            "TENANTRY_TEAMS_TOKEN_URL": settings.token_url or "",
            "TENANTRY_TEAMS_CONNECTOR_HOSTS": json.dumps(settings.connector_hosts)}


async def test_a_teams_resume_is_posted_by_a_worker_into_the_conversation(
        teams_web: Scenario, tmp_path: Path) -> None:
    web = teams_web
    await web.tenant("acme", plan("tight", run_tool_calls=1))
    await web.teams.link(ORG, "acme", admin=GRACE)
    workers = Workers(web.settings, tmp_path / "effects.txt", extra=teams_env(web.teams))
    chat = group_chat(ORG)
    try:
        await workers.start(1)
        await web.teams.send(web.teams.activities.message(chat, LIN, "counter.bump please"))
        await web.idle()
        halted = await delivered(web, "halted")
        [card] = web.teams.cards(chat.id)
        assert halted.id in json.dumps(card)

        await web.db.run(update_plan, "tight", limits={"run_tool_calls": 5})
        replies = await asyncio.gather(*(
            web.teams.send(web.teams.activities.card_action(
                chat, LIN, teams_render.RESUME_VERB, {"run_id": halted.id}))
            for _ in range(2)))
        await web.idle()
        done = await delivered(web, "completed")
    finally:
        await workers.stop_all()

    shown = sorted(json.dumps(body, ensure_ascii=False) for _status, body in replies)
    assert sum(teams_render.resume_started() in t for t in shown) == 1
    assert sum(teams_render.already_resumed() in t for t in shown) == 1
    assert (done.answer, done.attempts) == ("bumped twice", 2)
    assert await resumptions(web) == ([False, True], [f"teams:{ORG}:{LIN.aad_object_id}"])
    assert "bumped twice" in web.teams.texts(chat.id)[-1], "posted where it was asked"
    assert applied_by_workers(workers) == [1, 1], "each tool step applied once"
