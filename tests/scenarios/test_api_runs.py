"""Runs over the HTTP API: accepted at once, executed as any run, kept to their tenant."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from bots.api.idempotency import KEPT, api_idempotency, forget_expired
from core.audit import events
from core.tenants import update_plan
from tests.scenarios.api_client import Answer, call, issue_key
from tests.scenarios.harness import Scenario, audit_events, runs_of
from tests.support.tenancy import plan

TWO_TOOLS = "check budget.status and knowledge.search?"


async def finished(scenario: Scenario, key: str, run_id: str) -> dict[str, Any]:
    """The run once it stopped executing."""
    for _ in range(200):
        await scenario.idle()
        answer = await call(scenario, "GET", f"/v1/runs/{run_id}", key)
        if answer.body["status"] not in {"queued", "running"}:
            return dict(answer.body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never finished")


async def test_a_run_is_accepted_at_once_then_answers_as_the_keys_principal(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    key = await issue_key(scenario, "acme", "svc:backend")

    accepted = await call(scenario, "POST", "/v1/runs", key, json={"prompt": "hello"},
                          headers={"X-Tenantry-Session": "checkout-7"})

    assert accepted.status == 202
    run = await finished(scenario, key, accepted.body["id"])
    assert run["status"] == "completed" and run["answer"]
    assert run["usage"]["input_tokens"] > 0
    [record] = await runs_of(scenario, "acme")
    assert (record.id, record.principal_id, record.principal_kind, record.correlation_id) == (
        accepted.body["id"], "svc:backend", "service", "session:checkout-7")
    [started] = await audit_events(scenario, "acme", events.RUN_STARTED)
    assert started.fields["principal"] == "svc:backend"
    assert started.fields["correlation_id"] == "session:checkout-7"


async def test_two_tenants_keys_never_see_each_others_runs(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    acme = await issue_key(scenario, "acme")
    globex = await issue_key(scenario, "globex")
    run_id = (await call(scenario, "POST", "/v1/runs", acme, json={"prompt": "hi"})).body["id"]
    await finished(scenario, acme, run_id)

    seen = await call(scenario, "GET", f"/v1/runs/{run_id}", globex)
    resumed = await call(scenario, "POST", f"/v1/runs/{run_id}/resume", globex)

    assert (seen.status, resumed.status) == (404, 404)
    assert seen.body == {**seen.body, "status": 404, "detail": "no such run"}
    assert await runs_of(scenario, "globex") == []


async def test_the_same_idempotency_key_starts_one_run_and_another_body_conflicts(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    key = await issue_key(scenario, "acme")
    once = {"Idempotency-Key": "order-42"}

    answers = await asyncio.gather(*(call(scenario, "POST", "/v1/runs", key,
                                          json={"prompt": "hello"}, headers=once)
                                     for _ in range(3)))
    other = await call(scenario, "POST", "/v1/runs", key, json={"prompt": "bye"}, headers=once)
    elsewhere = await call(scenario, "POST", "/v1/runs", await issue_key(scenario, "globex"),
                           json={"prompt": "hello"}, headers=once)

    assert {a.status for a in answers} == {202}
    assert len({a.body["id"] for a in answers}) == 1
    assert other.status == 409 and other.body["status"] == 409
    assert elsewhere.status == 202 and elsewhere.body["id"] != answers[0].body["id"]
    await scenario.idle()
    assert len(await runs_of(scenario, "acme")) == 1


async def test_an_idempotency_key_is_kept_for_a_day_then_starts_a_new_run(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    key = await issue_key(scenario, "acme")
    once = {"Idempotency-Key": "order-42"}
    first = await call(scenario, "POST", "/v1/runs", key, json={"prompt": "hello"}, headers=once)
    kept = await call(scenario, "POST", "/v1/runs", key, json={"prompt": "bye"}, headers=once)
    assert (first.status, kept.status) == (202, 409)

    def age(conn: Connection, by: timedelta) -> None:
        conn.execute(update(api_idempotency).values(
            created_at=api_idempotency.c.created_at - by))

    await scenario.db.run(age, KEPT + timedelta(seconds=1))
    again = await call(scenario, "POST", "/v1/runs", key, json={"prompt": "bye"}, headers=once)
    assert again.status == 202 and again.body["id"] != first.body["id"]
    await call(scenario, "POST", "/v1/runs", key, json={"prompt": "x"},
               headers={"Idempotency-Key": "order-43"})

    await scenario.db.run(age, KEPT + timedelta(seconds=1))
    await call(scenario, "POST", "/v1/runs", key, json={"prompt": "y"},
               headers={"Idempotency-Key": "order-44"})
    assert await scenario.db.run(forget_expired, now=datetime.now(UTC)) == 2
    assert await scenario.db.run(forget_expired, now=datetime.now(UTC)) == 0
    await scenario.idle()
    assert len(await runs_of(scenario, "acme")) == 4


async def test_bad_bodies_are_refused_with_one_problem_shape(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    key = await issue_key(scenario, "acme")

    cases: list[Answer] = [
        await call(scenario, "POST", "/v1/runs", key, data=b"{not json"),
        await call(scenario, "POST", "/v1/runs", key, json={"prompt": ""}),
        await call(scenario, "POST", "/v1/runs", key, json={"prompt": "x" * 16_001}),
        await call(scenario, "POST", "/v1/runs", key, data=b"x" * 70_000),
        await call(scenario, "POST", "/v1/runs", key, json={"prompt": "hi", "extra": 1}),
        await call(scenario, "DELETE", "/v1/runs", key),
    ]

    assert [a.status for a in cases] == [422, 422, 422, 413, 422, 405]
    for answer in cases:
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert set(answer.body) == {"type", "title", "status", "detail"}
    assert await runs_of(scenario, "acme") == []


async def test_a_budget_halt_shows_in_the_run_and_its_principal_resumes_it(
        scenario: Scenario) -> None:
    await scenario.tenant("acme", plan("tight", run_tool_calls=1, capabilities=frozenset(
        {"budget.status", "knowledge.search"})))
    key = await issue_key(scenario, "acme", "svc:backend", role="member")
    stranger = await issue_key(scenario, "acme", "svc:other", role="member")
    run_id = (await call(scenario, "POST", "/v1/runs", key, json={"prompt": TWO_TOOLS})).body["id"]

    halted = await finished(scenario, key, run_id)
    assert halted["status"] == "halted"
    assert (halted["halt"]["ceiling"], halted["halt"]["limit"]) == ("tool_calls", 1)
    assert halted["usage"]["tool_calls"] == 1
    assert (await call(scenario, "POST", f"/v1/runs/{run_id}/resume", stranger)).status == 403

    await scenario.db.run(update_plan, "tight", limits={"run_tool_calls": 5})
    resumed = await call(scenario, "POST", f"/v1/runs/{run_id}/resume", key)

    assert resumed.status == 202
    done = await finished(scenario, key, run_id)
    assert done["status"] == "completed" and done["answer"]
    again = await call(scenario, "POST", f"/v1/runs/{run_id}/resume", key)
    assert again.status == 409


async def sse(scenario: Scenario, key: str, run_id: str,
              last: str | None = None) -> list[dict[str, str]]:
    """Every server-sent event of the run's stream, read until the server closes it."""
    headers = {"Authorization": f"Bearer {key}", **({"Last-Event-ID": last} if last else {})}
    async with scenario.session.get(f"{scenario.url}/v1/runs/{run_id}/events",
                                    headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        text = (await response.read()).decode()
    found = []
    for block in text.split("\r\n\r\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            found.append(fields)
    return found


async def test_the_events_stream_shows_progress_and_the_answer_and_resumes_after_an_id(
        scenario: Scenario) -> None:
    await scenario.tenant("acme", plan("tools", capabilities=frozenset(
        {"budget.status", "knowledge.search"})))
    key = await issue_key(scenario, "acme", role="member")
    run_id = (await call(scenario, "POST", "/v1/runs", key, json={"prompt": TWO_TOOLS})).body["id"]

    streamed = await sse(scenario, key, run_id)

    progress = [e for e in streamed if e["event"] == "progress"]
    kinds = [json.loads(e["data"])["type"] for e in progress]
    assert kinds[0] == events.RUN_STARTED and kinds[-1] == events.RUN_COMPLETED
    assert kinds.count(events.TOOL_INVOKED) == 2
    ids = [int(e["id"]) for e in progress]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    last = streamed[-1]
    assert last["event"] == "run" and json.loads(last["data"])["status"] == "completed"

    rest = await sse(scenario, key, run_id, last=str(ids[1]))

    assert [int(e["id"]) for e in rest if e["event"] == "progress"] == ids[2:]
    assert rest[-1]["data"] == last["data"]
    other = await issue_key(scenario, await scenario.tenant("globex"))
    assert (await call(scenario, "GET", f"/v1/runs/{run_id}/events", other)).status == 404
