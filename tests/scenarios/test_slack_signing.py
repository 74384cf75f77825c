"""What reaches a run: only fresh, correctly signed, well-formed requests, each once."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import pytest

from standins.slack.api import SlackUser
from tests.scenarios.harness import FORM, JSON, Scenario, Workspace, runs_of, thread

ADA = SlackUser("U1ADA")


@pytest.fixture
async def t1(scenario: Scenario) -> Workspace:
    await scenario.tenant("acme")
    return await scenario.link_workspace("T1", "acme", users=[ADA])


def mention(scenario: Scenario, ws: Workspace, text: str = "hello",
            event_id: str | None = None) -> bytes:
    event = scenario.mention_event(ws, ADA.id, text)
    return json.dumps(scenario.event_body(ws, event, event_id=event_id)).encode()


async def nothing_ran(scenario: Scenario) -> bool:
    await scenario.idle()
    return await runs_of(scenario, "acme") == [] and scenario.slack.calls("chat.startStream") == []


async def test_a_bad_signature_is_refused(scenario: Scenario, t1: Workspace) -> None:
    body = mention(scenario, t1)
    now = int(time.time())

    wrong_secret = await scenario.post(body, JSON, signed=scenario.sign(body, now, "not-it"))
    tampered = await scenario.post(body.replace(b"hello", b"HELLO"), JSON,
                                   signed=scenario.sign(body, now))
    unsigned = await scenario.post(body, JSON, signed={})
    garbage = await scenario.post(body, JSON, signed={
        "X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=\u00e9"})
    not_ascii = await scenario.post(body, JSON, signed={
        "X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=\u00e9"})

    sent = (wrong_secret, tampered, unsigned, garbage, not_ascii)
    assert [r.status for r in sent] == [401] * 5
    assert await nothing_ran(scenario)


async def test_a_request_older_than_five_minutes_is_refused(
    scenario: Scenario, t1: Workspace,
) -> None:
    body = mention(scenario, t1)

    stale = await scenario.post(body, JSON, timestamp=int(time.time()) - 301)
    future = await scenario.post(body, JSON, timestamp=int(time.time()) + 400)

    assert (stale.status, future.status) == (401, 401)
    assert await nothing_ran(scenario)


async def test_a_replayed_request_starts_no_second_run(scenario: Scenario, t1: Workspace) -> None:
    body = mention(scenario, t1)
    signed = scenario.sign(body, int(time.time()))

    first = await scenario.post(body, JSON, signed=signed)
    await scenario.idle()
    again = await scenario.post(body, JSON, signed=signed)
    await scenario.idle()

    assert (first.status, again.status) == (200, 200)
    assert len(await runs_of(scenario, "acme")) == 1
    assert len(scenario.slack.calls("chat.startStream")) == 1


async def test_a_replayed_slash_command_starts_no_second_run(
    scenario: Scenario, t1: Workspace,
) -> None:
    form = urlencode({"team_id": "T1", "user_id": ADA.id, "channel_id": t1.channel,
                      "command": "/ask", "text": "hi", "trigger_id": "1.2.3"}).encode()
    signed = scenario.sign(form, int(time.time()))

    first = await scenario.post(form, FORM, signed=signed)
    await scenario.idle()
    again = await scenario.post(form, FORM, signed=signed)
    await scenario.idle()

    assert (first.status, again.status) == (200, 200)
    assert len(await runs_of(scenario, "acme")) == 1
    assert len(scenario.slack.calls("chat.postMessage")) == 1, "one question, one thread"


@pytest.mark.parametrize(("body", "content_type"), [
    (b"", JSON),
    (b"{not json", JSON),
    (b"[1, 2, 3]", JSON),
    (b"\"a string\"", JSON),
    (b"{}", JSON),
    (b"\xff\xfe\x00garbage", JSON),
    (b"payload=%7Bnot-json", FORM),
    (b"payload=%5B%5D", FORM),
    (b'{"type": "event_callback", "event": "not an object", "authorizations": "x"}', JSON),
    (b'{"type": "event_callback", "team_id": 7, "event": {"type": 5}}', JSON),
    (b'{"type": "event_callback", "team_id": "T1", "event": {"type": "app_mention", '
     b'"user": ["U1"], "channel": {"id": 1}, "text": 3}, "event_id": "Ev1"}', JSON),
    (b'{"type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U1ADA"}, '
     b'"actions": [{"action_id": "tenantry_resume", "value": 7}]}', JSON),
    (b"command=%2Fask&team_id=T1&text=hi", FORM),
], ids=lambda value: value if isinstance(value, str) else None)
async def test_malformed_bodies_are_refused_or_ignored_never_a_500(
    scenario: Scenario, t1: Workspace, body: bytes, content_type: str,
) -> None:
    sent = await scenario.post(body, content_type, signed=scenario.sign(body, int(time.time())))

    assert sent.status in (200, 400), sent
    assert await nothing_ran(scenario)


@pytest.mark.parametrize("payload", [
    {"type": "shortcut", "callback_id": "unknown", "team": {"id": "T1"},
     "user": {"id": ADA.id}, "trigger_id": "1.2.3"},
    {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": ADA.id},
     "view": {"id": "V1", "callback_id": "nope", "state": {"values": {}}}},
    {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": ADA.id},
     "actions": [{"action_id": "some_other_button", "value": "x"}]},
    {"type": "something_slack_adds_next_year", "team": {"id": "T1"}},
], ids=lambda p: str(p["type"]))
async def test_unknown_payload_types_are_ignored(
    scenario: Scenario, t1: Workspace, payload: dict[str, object],
) -> None:
    body = urlencode({"payload": json.dumps(payload)}).encode()

    sent = await scenario.post(body, FORM)

    assert sent.status in (200, 400), sent
    assert await nothing_ran(scenario)


async def test_url_verification_answers_the_challenge(scenario: Scenario) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123",
                       "token": "x"}).encode()

    sent = await scenario.post(body, JSON)

    assert sent.status == 200
    assert sent.json() == {"challenge": "c-123"}


async def test_slack_retries_never_start_a_second_run(scenario: Scenario, t1: Workspace) -> None:
    event = scenario.mention_event(t1, ADA.id, "only once please")

    first = await scenario.event(t1, event, event_id="EvRETRY1")
    retries = await asyncio.gather(*(
        scenario.event(t1, event, event_id="EvRETRY1", retry_num=n) for n in (1, 2)))
    await scenario.idle()
    late = await scenario.event(t1, event, event_id="EvRETRY1", retry_num=3)
    await scenario.idle()

    assert [r.status for r in (first, *retries, late)] == [200] * 4
    assert len(await runs_of(scenario, "acme")) == 1
    assert len(thread(scenario.slack, t1.channel, str(event["ts"]))) == 1
    assert len(scenario.slack.calls("chat.startStream")) == 1
