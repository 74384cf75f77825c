"""No request gets a 5xx: every kind of bad request, with the status it gets instead."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

import pytest
import structlog

from bots import serving
from bots.slack import render
from core.audit import events
from installs.links import revoke
from standins.slack.api import SlackUser
from standins.teams.activities import TeamsUser, personal_chat
from standins.teams.scenario import APP_ID
from tests.scenarios.harness import FORM, JSON, Scenario, Sent, Workspace, audit_events, runs_of

ADA = SlackUser("U1ADA")
GRACE = TeamsUser("Grace")
ORG = "3b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
SECRET_LOOKING = "S3CRETVALUE"
CLOSED_PORT_URL = "http://127.0.0.1:9/response_url"
"""A ``response_url`` nothing answers on (the discard port, closed on loopback)."""


def form(**fields: str) -> bytes:
    return urlencode(fields).encode()


def command_form(ws: Workspace, text: str = "hello", **changes: str) -> bytes:
    fields = {"team_id": ws.team_id, "user_id": ADA.id, "channel_id": ws.channel,
              "command": "/ask", "text": text, "trigger_id": f"{time.time_ns()}.1.x",
              "response_url": CLOSED_PORT_URL, **changes}
    return form(**fields)


def button_body(team_id: str, response_url: str) -> bytes:
    payload = {"type": "block_actions", "team": {"id": team_id}, "user": {"id": ADA.id,
                                                                          "team_id": team_id},
               "channel": {"id": f"C{team_id}"}, "response_url": response_url,
               "trigger_id": f"{time.time_ns()}.1.x",
               "actions": [{"action_id": render.RESUME_ACTION, "value": "run-1"}]}
    return form(payload=json.dumps(payload))


async def raw_http(scenario: Scenario, request: bytes) -> tuple[int, bytes]:
    """Send bytes aiohttp's client would refuse to write; the status and the body."""
    where = urlsplit(scenario.url)
    assert where.hostname is not None and where.port is not None
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def send(scenario: Scenario, method: str, path: str, body: bytes = b"",
               headers: list[tuple[str, str]] | None = None) -> int:
    async with scenario.session.request(method, scenario.url + path, data=io.BytesIO(body),
                                        headers=headers or []) as got:
        await got.read()
        return got.status


Case = Callable[[Scenario, Workspace, Workspace], Awaitable[int | Sent]]


def signed(body: bytes, content_type: str = JSON, *, age: int = 0,
           secret: str | None = None) -> Case:
    async def case(s: Scenario, _linked: Workspace, _unlinked: Workspace) -> int:
        when = int(time.time()) - age
        headers = s.sign(body, when) if secret is None else s.sign(body, when, secret)
        return await send(s, "POST", "/slack/events", body,
                          [("Content-Type", content_type), *headers.items()])
    return case


def twice(header: str) -> Case:
    """A request correctly signed, with a second value of one signature header after it."""
    async def case(s: Scenario, linked: Workspace, _unlinked: Workspace) -> int:
        body = command_form(linked)
        good = s.sign(body, int(time.time()))
        headers = [("Content-Type", FORM), *good.items(), (header, good[header] + "0")]
        return await send(s, "POST", "/slack/events", body, headers)
    return case


def from_workspace(make: Callable[[Scenario, Workspace], Awaitable[Sent]],
                   linked: bool) -> Case:
    async def case(s: Scenario, ws: Workspace, unlinked: Workspace) -> Sent:
        return await make(s, ws if linked else unlinked)
    return case


async def not_installed_event(s: Scenario, _ws: Workspace, _unlinked: Workspace) -> Sent:
    nowhere = Workspace(team_id="T404", token="xoxb-none", channel="C404")
    return await s.event(nowhere, s.mention_event(nowhere, ADA.id, "anyone there?"))


async def not_installed_command(s: Scenario, _ws: Workspace, _unlinked: Workspace) -> Sent:
    nowhere = Workspace(team_id="T404", token="xoxb-none", channel="C404")
    return await s.post(command_form(nowhere), FORM)


async def not_installed_button(s: Scenario, _ws: Workspace, _unlinked: Workspace) -> Sent:
    body = button_body("T404", CLOSED_PORT_URL)
    return await s.post(body, FORM)


async def unlinked_command(s: Scenario, _ws: Workspace, unlinked: Workspace) -> Sent:
    return await s.command(unlinked, ADA.id, "hello?")


def teams(body: bytes, *, token: str | None, content_type: str = JSON) -> Case:
    """A POST to ``/api/messages``; ``token`` ``"valid"`` for a fresh channel token."""
    async def case(s: Scenario, _ws: Workspace, _unlinked: Workspace) -> int:
        activity = s.teams.activities.message(personal_chat(ORG), GRACE, "hello")
        authorization = token
        if token == "valid":
            authorization = "Bearer " + s.teams.issuer.channel_token(
                APP_ID, str(activity["serviceUrl"]))
        headers = [("Content-Type", content_type)]
        if authorization is not None:
            headers.append(("Authorization", authorization))
        return await send(s, "POST", "/api/messages", body, headers)
    return case


def route(method: str, path: str) -> Case:
    async def case(s: Scenario, _ws: Workspace, _unlinked: Workspace) -> int:
        return await send(s, method, path)
    return case


def raw(request: bytes) -> Case:
    async def case(s: Scenario, _ws: Workspace, _unlinked: Workspace) -> int:
        status, body = await raw_http(s, request)
        assert SECRET_LOOKING.encode() not in body, body
        return status
    return case


MENTION = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": "Ev1",
                      "event": {"type": "app_mention", "user": ADA.id, "text": "hi",
                                "channel": "CT1", "ts": "1.1"}}).encode()
TOO_BIG = b"x" * (1024 * 1024 + 1)
HEAD = b"POST /slack/events HTTP/1.1\r\nHost: tenantry\r\n"

BAD_REQUESTS: dict[str, tuple[Case, int]] = {
    # Slack: bodies
    "empty body": (signed(b""), 400),
    "body not UTF-8": (signed(b"\xff\xfe\x00garbage"), 400),
    "body not JSON": (signed(b"{not json"), 400),
    "JSON array": (signed(b"[1, 2, 3]"), 400),
    "JSON string": (signed(b'"a string"'), 400),
    "interactivity payload not JSON": (signed(b"payload=%7Bnot-json", FORM), 400),
    "interactivity payload an array": (signed(b"payload=%5B%5D", FORM), 400),
    "ids of the wrong type": (signed(b'{"type": "event_callback", "team_id": 7, '
                                     b'"event": {"type": 5}}'), 400),
    "body over 1 MiB": (signed(TOO_BIG), 413),
    # Slack: signatures
    "signed with another secret": (signed(MENTION, secret="not-it"), 401),
    "unsigned": (lambda s, _l, _u: s.post(MENTION, JSON, signed={}), 401),
    "timestamp not a number": (lambda s, _l, _u: s.post(MENTION, JSON, signed={
        "X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}), 401),
    "signature not ASCII": (lambda s, _l, _u: s.post(MENTION, JSON, signed={
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=\u00e9"}), 401),
    "two signatures": (twice("X-Slack-Signature"), 401),
    "two timestamps": (twice("X-Slack-Request-Timestamp"), 401),
    "stale timestamp": (signed(MENTION, age=301), 401),
    "timestamp in the future": (signed(MENTION, age=-400), 401),
    # Slack: workspaces
    "event from a workspace without installation": (not_installed_event, 200),
    "command from a workspace without installation": (not_installed_command, 200),
    "button from a workspace without installation": (not_installed_button, 200),
    "command from an unlinked workspace": (unlinked_command, 200),
    # Teams
    "teams without a token": (teams(b"{}", token=None), 401),
    "teams with a garbage token": (teams(b"{}", token="Bearer not.a.jwt"), 401),
    "teams body not JSON": (teams(b"{not json", token="valid"), 400),
    "teams body an array": (teams(b"[1]", token="valid"), 400),
    "teams body over 1 MiB": (teams(TOO_BIG, token="valid"), 413),
    # Routes and methods
    "unknown route": (route("GET", "/nope"), 404),
    "GET on the events URL": (route("GET", "/slack/events"), 405),
    "DELETE on the Teams URL": (route("DELETE", "/api/messages"), 405),
    "POST on the health check": (route("POST", "/healthz"), 405),
    # What aiohttp's parser rejects before any handler
    "header line too long": (raw(HEAD + b"X-Long: " + SECRET_LOOKING.encode() * 1000
                                 + b"\r\nContent-Length: 0\r\n\r\n"), 400),
    "control character in a header": (raw(HEAD + b"X-Bad: " + SECRET_LOOKING.encode()
                                          + b"\x01\r\nContent-Length: 0\r\n\r\n"), 400),
    "space in a header name": (raw(HEAD + b"X Bad: " + SECRET_LOOKING.encode()
                                   + b"\r\nContent-Length: 0\r\n\r\n"), 400),
    "Content-Length not a number": (raw(HEAD + b"Content-Length: zz\r\n\r\n"), 400),
}


async def test_no_bad_request_gets_a_5xx(teams: Scenario) -> None:
    await teams.tenant("acme")
    linked = await teams.link_workspace("T1", "acme", users=[ADA])
    unlinked = await teams.install("T9", users=[ADA])

    got: dict[str, int] = {}
    for name, (case, _expected) in BAD_REQUESTS.items():
        sent = await case(teams, linked, unlinked)
        got[name] = sent if isinstance(sent, int) else sent.status
    await teams.idle()

    assert got == {name: expected for name, (_case, expected) in BAD_REQUESTS.items()}
    assert await runs_of(teams, "acme") == []


async def test_a_command_without_installation_is_apologised_to_at_once(
    scenario: Scenario,
) -> None:
    nowhere = Workspace(team_id="T404", token="xoxb-none", channel="C404")
    body = command_form(nowhere)

    sent = await scenario.post(body, FORM)
    await scenario.idle()

    assert (sent.status, sent.text) == (200, render.refusal("not_installed"))
    assert sent.elapsed < 1.0, "the unreachable response_url is never waited on"


async def test_a_button_without_installation_is_acked_then_apologised_to(
    scenario: Scenario,
) -> None:
    answered = await scenario.post(button_body("T404", scenario.slack.base_url + "response_url.1"),
                                   FORM)
    unreachable = await scenario.post(button_body("T405", CLOSED_PORT_URL), FORM)
    await scenario.idle()

    assert [(s.status, s.text) for s in (answered, unreachable)] == [(200, "")] * 2
    [told] = scenario.slack.calls("response_url.1")
    assert told.params["text"] == render.refusal("not_installed")
    assert told.at >= scenario.slack.clock() - 5


async def test_a_revoked_workspaces_command_is_told_so_in_the_ack_and_audited(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    await scenario.db.run(revoke, None, "T1")

    sent = await scenario.command(t1, ADA.id, "hello?")
    await scenario.idle()

    assert (sent.status, sent.text) == (200, render.refusal("link_revoked"))
    assert scenario.slack.ephemeral_messages(t1.channel) == []
    [refused] = await audit_events(scenario, "acme", events.RUN_REFUSED)
    assert refused.fields["reason"] == "link_revoked"
    assert await runs_of(scenario, "acme") == []


@pytest.mark.parametrize("header", ["X-Slack-Signature", "X-Slack-Request-Timestamp"])
async def test_two_signature_headers_are_refused_whichever_comes_first(
    scenario: Scenario, header: str,
) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    body = command_form(t1)
    good = scenario.sign(body, int(time.time()))
    wrong = good[header] + "0"

    statuses = [await send(scenario, "POST", "/slack/events", body,
                           [("Content-Type", FORM), *good.items(), (header, wrong)]),
                await send(scenario, "POST", "/slack/events", body,
                           [("Content-Type", FORM), (header, wrong), *good.items()])]
    await scenario.idle()

    assert statuses == [401, 401]
    assert await runs_of(scenario, "acme") == []


async def test_a_header_the_parser_rejects_is_one_log_line_and_not_echoed(
    scenario: Scenario, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with structlog.testing.capture_logs() as logged:
        # A fresh logger for the server's module: the shared one may have been bound, and
        # cached, under an earlier test's configuration, which the capture cannot reach.
        monkeypatch.setattr(serving, "log", structlog.get_logger("tenantry"))
        status, body = await raw_http(scenario, HEAD + b"X-Bad: " + SECRET_LOOKING.encode()
                                      + b"\x01\r\nContent-Length: 0\r\n\r\n")

    assert status == 400
    assert body == b"bad request: Invalid header value char\n"
    [line] = [entry for entry in logged if entry["event"] == "http request rejected by the parser"]
    assert (line["status"], line["error"], line["reason"]) == (
        400, "BadHttpMessage", "Invalid header value char")
    assert SECRET_LOOKING not in json.dumps(logged, default=str)
    assert not [r for r in caplog.records if r.name == "aiohttp.server"], "no plain traceback"


async def test_the_same_event_id_from_two_workspaces_is_two_events(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    t2 = await scenario.link_workspace("T2", "globex", users=[ADA])

    first = await scenario.event(t1, scenario.mention_event(t1, ADA.id, "hi from T1"),
                                 event_id="EvSAME")
    second = await scenario.event(t2, scenario.mention_event(t2, ADA.id, "hi from T2"),
                                  event_id="EvSAME")
    retried = await scenario.event(t1, scenario.mention_event(t1, ADA.id, "hi from T1"),
                                   event_id="EvSAME", retry_num=1)
    await scenario.idle()

    assert [s.status for s in (first, second, retried)] == [200, 200, 200]
    assert [r.prompt for r in await runs_of(scenario, "acme")] == ["hi from T1"]
    assert [r.prompt for r in await runs_of(scenario, "globex")] == ["hi from T2"]

