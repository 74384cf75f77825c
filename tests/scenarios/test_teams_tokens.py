"""What reaches a Teams run: only activities with a valid channel token and a Microsoft
``serviceUrl`` that matches it; malformed bodies get a 400, never a 500."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import aiohttp
import pytest
from microsoft_agents.hosting.core.authorization import AuthenticationConstants
from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator

from bots.teams import app as teams_app
from bots.teams.settings import TeamsSettings
from core.settings import Settings
from standins.teams.activities import TeamsUser, personal_chat
from standins.teams.scenario import APP_ID, APP_PASSWORD, APP_TENANT
from tests.scenarios.harness import Scenario, open_scenario, open_teams_side, runs_of

ORG = "3b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
FOREIGN = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
ADA = TeamsUser("Ada")


@pytest.fixture
async def linked(teams: Scenario) -> Scenario:
    await teams.tenant("acme")
    await teams.teams.link(ORG, "acme", admin=ADA)
    return teams


def question(s: Scenario, **changes: Any) -> dict[str, Any]:
    activity = s.teams.activities.message(personal_chat(ORG), ADA, "hello")
    activity.update(changes)
    return activity


async def nothing_ran(s: Scenario) -> bool:
    await s.idle()
    return await runs_of(s, "acme") == [] and all(
        call.operation == "create_conversation" for call in s.teams.connector.calls())


async def test_a_valid_token_reaches_a_run(linked: Scenario) -> None:
    status, _ = await linked.teams.send(question(linked))
    await linked.idle()

    assert status == 202
    [run] = await runs_of(linked, "acme")
    assert run.principal_id == f"teams:{ORG}:{ADA.aad_object_id}"


@pytest.mark.parametrize("case", [
    "no_header", "not_bearer", "wrong_audience", "wrong_key", "expired", "foreign_issuer",
    "foreign_entra_tenant", "garbage",
])
async def test_a_bad_token_is_refused_with_401(linked: Scenario, case: str) -> None:
    issuer, activity = linked.teams.issuer, question(linked)
    service = activity["serviceUrl"]
    tokens = {
        "no_header": "",
        "not_bearer": "Basic " + issuer.channel_token(APP_ID, service),
        "wrong_audience": "Bearer " + issuer.channel_token(
            APP_ID, service, audience="11111111-2222-4333-8444-555555555555"),
        "wrong_key": "Bearer " + issuer.channel_token(APP_ID, service, foreign_key=True),
        "expired": "Bearer " + issuer.channel_token(APP_ID, service, expired=True),
        "foreign_issuer": "Bearer " + issuer.channel_token(
            APP_ID, service, issuer="https://issuer.example.com"),
        # Signed by a key the keys endpoint serves, for our app id, by another Entra
        # tenant: the SDK accepts this unless its issuer check is turned on.
        "foreign_entra_tenant": "Bearer " + issuer.channel_token(
            APP_ID, service, issuer=f"https://login.microsoftonline.com/{FOREIGN}/v2.0",
            tid=FOREIGN),
        "garbage": "Bearer not.a.jwt",
    }

    status, _ = await linked.teams.send(activity, authorization=tokens[case])

    assert status == 401
    assert await nothing_ran(linked)


async def test_the_bots_own_entra_tenant_is_trusted(linked: Scenario) -> None:
    activity = question(linked)
    token = linked.teams.issuer.channel_token(
        APP_ID, activity["serviceUrl"],
        issuer=f"https://login.microsoftonline.com/{APP_TENANT}/v2.0", tid=APP_TENANT)

    status, _ = await linked.teams.send(activity, authorization=f"Bearer {token}")

    assert status == 202


@pytest.mark.parametrize("service_url", [
    "https://smba.trafficmanager.net/amer/",  # a Microsoft host, but not the token's
    "https://attacker.example.com/amer/",
    "http://127.0.0.2/amer/",
])
async def test_a_service_url_the_token_does_not_name_is_refused(
    linked: Scenario, service_url: str,
) -> None:
    activity = question(linked)
    token = linked.teams.issuer.channel_token(APP_ID, activity["serviceUrl"])
    activity["serviceUrl"] = service_url

    status, _ = await linked.teams.send(activity, authorization=f"Bearer {token}")

    assert status == 401
    assert await nothing_ran(linked)


async def test_a_token_naming_a_foreign_service_url_is_refused(linked: Scenario) -> None:
    activity = question(linked, serviceUrl="https://attacker.example.com/amer/")

    status, _ = await linked.teams.send(activity)  # the token names the same URL

    assert status == 401
    assert await nothing_ran(linked)


async def _post(s: Scenario, body: bytes) -> int:
    activity = question(s)
    token = s.teams.issuer.channel_token(APP_ID, activity["serviceUrl"])
    async with aiohttp.ClientSession() as session, session.post(
        s.teams.endpoint, data=body, headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"}) as got:
        return got.status


async def test_malformed_bodies_are_400_never_500(linked: Scenario) -> None:
    good = question(linked)
    no_conversation = {k: v for k, v in good.items() if k != "conversation"}
    bad_types = {**good, "conversation": "not an object"}
    bad_sender = {**good, "from": "not an object"}  # refused by the SDK's own validation

    statuses = [await _post(linked, body) for body in (
        b"{not json", b"[1, 2]", b'"text"', json.dumps(no_conversation).encode(),
        json.dumps(bad_types).encode(), json.dumps({**good, "type": ""}).encode(),
        json.dumps(bad_sender).encode())]

    assert statuses == [400] * 7
    assert await nothing_ran(linked)


async def test_activities_without_usable_ids_or_of_unknown_types_are_ignored(
    linked: Scenario,
) -> None:
    good = question(linked)
    no_user = {**good, "from": {"id": "29:x", "name": "No object id"}}
    disagreeing = {**good, "channelData": {"tenant": {"id": FOREIGN}}}
    unknown = {**good, "type": "somethingNew"}

    statuses = [(await linked.teams.send(a)).status for a in (no_user, disagreeing, unknown)]

    assert all(status in (200, 202) for status in statuses)
    assert await nothing_ran(linked)


async def test_the_sdk_still_asks_for_the_bot_framework_keys(linked: Scenario) -> None:
    # Canary for an SDK upgrade: the local keys stand in at the URI the SDK chooses;
    # if it chose another, production would fetch keys from somewhere unexpected.
    status, _ = await linked.teams.send(question(linked))

    asked = JwtTokenValidator._jwk_client_manager.asked  # type: ignore[attr-defined]
    assert status == 202
    assert asked and set(asked) == {AuthenticationConstants.PUBLIC_ABS_JWKS_URL}
    assert AuthenticationConstants.PUBLIC_ABS_JWKS_URL == (
        "https://login.botframework.com/v1/.well-known/keys")


async def test_the_token_check_guards_the_teams_route_only(linked: Scenario) -> None:
    health = await linked.get("/healthz")

    assert health.status == 200  # no token asked for beside /api/messages


class Warnings:
    """Stands in for the Teams app module's logger to hear what startup warns of."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def warning(self, event: str, **_fields: Any) -> None:
        self.said.append(event)


async def test_anonymous_mode_takes_requests_without_a_token_and_says_so_loudly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    heard = Warnings()
    monkeypatch.setattr(teams_app, "log", heard)
    async with open_teams_side() as side:
        host = side.settings.connector_hosts
        anonymous = dataclasses.replace(side, settings=TeamsSettings(
            app_id=None, app_password=None, app_tenant_id=None, allow_anonymous=True,
            connector_hosts=host))
        async with open_scenario(settings, teams=anonymous) as s:
            await s.tenant("acme")
            await s.teams.link(ORG, "acme")
            status, _ = await s.teams.send(question(s), authorization="")
            await s.idle()

            assert status == 202
            assert [r.principal_id for r in await runs_of(s, "acme")] == [
                f"teams:{ORG}:{ADA.aad_object_id}"]
            calls = s.teams.connector.calls()  # replies carry no token: Microsoft refuses
            assert calls and not any(call.accepted for call in calls)
    assert any(line.startswith("TEAMS ANONYMOUS MODE") for line in heard.said)


async def test_an_exchange_logged_at_debug_leaves_no_token_or_secret_in_the_log(
    linked: Scenario, debug_log: io.StringIO,
) -> None:
    chat = personal_chat(ORG)
    await linked.teams.send(linked.teams.activities.message(chat, ADA, "hello"))
    await linked.idle()

    logged = debug_log.getvalue()
    assert "Validating JWT token" in logged, "the SDK wrote its debug lines"
    issued = [t.access_token for t in linked.teams.issuer.issued]
    assert issued, "replies went out with a token"
    assert not any(token[:40] in logged for token in issued)
    assert APP_PASSWORD not in logged
