"""The playground through its page's API: what a person does there reaches the real server."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from bots.dev.playground import DEV_TEAM, DEV_TENANT, Playground, open_playground
from bots.slack import render
from core.audit.events import WORKSPACE_LINKED
from core.runs import recent_runs
from core.settings import Settings
from core.tenants import get_plan, update_plan
from installs.links import resolve

GENERAL, DM = f"C{DEV_TEAM}", f"D{DEV_TEAM}"


async def call(http: aiohttp.ClientSession, method: str, url: str,
               body: Any = None) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as response:
        return response.status, await response.json()


async def say(http: aiohttp.ClientSession, page: str, text: str, *, kind: str = "mention",
              channel: str = GENERAL, **extra: Any) -> dict[str, Any]:
    status, body = await call(http, "POST", page + "api/send", {
        "team": DEV_TEAM, "channel": channel, "kind": kind, "text": text, "wait": True,
        **extra})
    assert status == 200, body
    return dict(body)


async def test_the_dev_workspace_is_installed_and_linked_through_oauth(
    playground: Playground,
) -> None:
    s = playground.scenario
    link = await s.db.run(resolve, None, DEV_TEAM, False)
    assert link is not None and link.active and link.tenant_id == DEV_TENANT
    [exchange] = s.slack.calls("oauth.v2.access")
    assert exchange.error is None
    [linked] = await s.runtime.audit.recent(DEV_TENANT, 50, events=[WORKSPACE_LINKED])
    assert linked.fields["team_id"] == DEV_TEAM
    plan = await s.db.run(get_plan, "dev")
    assert plan.capabilities == set(s.runtime.registry.names())


async def test_a_mention_is_answered_in_its_thread(page: str, http: aiohttp.ClientSession,
                                                   playground: Playground) -> None:
    sent = await say(http, page, "Check budget.status")

    mine, answer = sent["thread"]
    assert (mine["author"], mine["text"]) == ("you", "@Tenantry Check budget.status")
    assert answer["author"] == "app" and answer["thread_ts"] == sent["thread_ts"]
    assert "- budget.status:" in answer["text"] and answer["state"] == "done"
    [run] = await playground.scenario.db.run(recent_runs, DEV_TENANT, limit=5)
    assert run.status == "completed" and run.principal_id == f"slack:{DEV_TEAM}:U0YOU"


async def test_the_page_sees_an_answer_it_did_not_wait_for(page: str,
                                                           http: aiohttp.ClientSession) -> None:
    status, sent = await call(http, "POST", page + "api/send", {
        "team": DEV_TEAM, "channel": GENERAL, "kind": "mention", "text": "hello"})
    assert status == 200 and sent["ts"]

    for _ in range(100):
        _, shown = await call(http, "GET", page + f"api/messages?team={DEV_TEAM}&channel="
                              f"{GENERAL}&thread={sent['ts']}")
        if any(m["author"] == "app" and m["state"] == "done" for m in shown["messages"]):
            break
        await asyncio.sleep(0.1)
    assert "You asked: hello" in shown["messages"][-1]["text"]


async def test_a_direct_message_and_the_slash_command_are_answered(
    page: str, http: aiohttp.ClientSession,
) -> None:
    dm = await say(http, page, "hi there", kind="message", channel=DM)
    ask = await say(http, page, "Check budget.status", kind="command")

    assert [m["author"] for m in dm["thread"]] == ["you", "app"]
    assert "You asked: hi there" in dm["thread"][1]["text"]
    authors = [m["author"] for m in ask["thread"]]
    assert authors.count("app") == 2, ask  # the question the app posts, then the answer
    question = next(m for m in ask["thread"] if m["ts"] == ask["thread_ts"])
    assert question["text"].endswith("asked: Check budget.status")
    assert "- budget.status:" in ask["thread"][-1]["text"]


async def test_a_halted_run_resumes_from_its_button(page: str, http: aiohttp.ClientSession,
                                                    playground: Playground) -> None:
    db = playground.scenario.db
    await db.run(update_plan, "dev", limits={"run_tool_calls": 1})

    halted = await say(http, page, "Check budget.status and audit.recent")
    [button] = [b for m in halted["thread"] for b in m["buttons"]]
    message = next(m for m in halted["thread"] if m["buttons"])
    status, _ = await call(http, "POST", page + "api/press", {
        "team": DEV_TEAM, "channel": GENERAL, "message_ts": message["ts"],
        "action_id": button["action_id"], "value": button["value"]})
    await playground.idle()
    _, after = await call(http, "GET", page + f"api/messages?team={DEV_TEAM}&channel={GENERAL}"
                          f"&thread={halted['thread_ts']}")

    assert (button["action_id"], button["label"]) == (render.RESUME_ACTION, "Resume")
    assert status == 200
    [run] = await db.run(recent_runs, DEV_TENANT, limit=5)
    assert run.id == button["value"] and run.status == "completed"
    resumed = next(m for m in after["messages"] if m["ts"] == message["ts"])
    assert "- audit.recent:" in resumed["text"] and not resumed["buttons"]


async def test_the_app_home_opens_and_verifies_the_audit_log(
    page: str, http: aiohttp.ClientSession, playground: Playground,
) -> None:
    status, home = await call(http, "POST", page + f"api/home?team={DEV_TEAM}", {})
    assert status == 200 and "Plan `dev`" in "\n".join(home["lines"])
    [verify] = home["buttons"]

    status, _ = await call(http, "POST", page + "api/press", {
        "team": DEV_TEAM, "channel": DM, "message_ts": "", **{
            k: verify[k] for k in ("action_id", "value")}})
    await playground.idle()
    _, home = await call(http, "GET", page + f"api/home?team={DEV_TEAM}")

    assert status == 200 and "Audit log verified" in "\n".join(home["lines"])


@pytest.mark.parametrize(("body", "error"), [
    ("not json", "the request body must be a JSON object"),
    ({"team": DEV_TEAM, "channel": GENERAL, "kind": "shout", "text": "x"},
     "'kind' must be one of: message, mention, command"),
    ({"team": DEV_TEAM, "channel": "C0NOPE", "kind": "mention", "text": "x"},
     f"no channel 'C0NOPE' in {DEV_TEAM}; known: {GENERAL}, {DM}"),
    ({"team": "T0NOPE", "channel": GENERAL, "kind": "mention", "text": "x"},
     f"no workspace 'T0NOPE' in the playground; known: {DEV_TEAM}"),
    ({"team": DEV_TEAM, "channel": GENERAL, "kind": "mention", "text": "  "},
     "type a message first"),
    ({"team": DEV_TEAM, "channel": GENERAL, "kind": "mention", "text": 7},
     "'text' must be a non-empty string"),
])
async def test_a_bad_request_is_a_400_with_one_sentence(
    page: str, http: aiohttp.ClientSession, body: Any, error: str,
) -> None:
    data = body.encode() if isinstance(body, str) else None
    async with http.post(page + "api/send", data=data,
                         json=None if data else body) as response:
        assert (response.status, await response.json()) == (400, {"error": error})


async def test_pressing_a_button_nobody_was_shown_is_refused(
    page: str, http: aiohttp.ClientSession, playground: Playground,
) -> None:
    status, body = await call(http, "POST", page + "api/press", {
        "team": DEV_TEAM, "channel": GENERAL, "message_ts": "1.000001",
        "action_id": render.RESUME_ACTION, "value": "run_of_another_tenant"})

    assert (status, body) == (400, {"error": "no such button on that message"})
    assert not playground.scenario.slack.calls("chat.update")


async def test_a_restart_reuses_the_dev_tenant_and_relinks_the_workspace(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"embedder": "hashing"})
    async with open_playground(settings) as first:
        await first.ask(DEV_TEAM, GENERAL, "mention", "hello")
    async with open_playground(settings) as second:
        _, thread = await second.ask(DEV_TEAM, GENERAL, "mention", "hello again")
        runs = await second.scenario.db.run(recent_runs, DEV_TENANT, limit=5)

    assert "You asked: hello again" in thread[-1].text
    assert [r.status for r in runs] == ["completed", "completed"]
