"""Tests of the Teams stand-ins, driven through the real Microsoft 365 Agents SDK 1.9.

The stand-ins are only worth having if the SDK's own code accepts what they serve, so
every protocol claim is checked there: the SDK validates the issuer's channel tokens
against its JWKS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from microsoft_agents.activity import (
    Activity,
)
from microsoft_agents.hosting.core import (
    AgentAuthConfiguration,
    AuthenticationConstants,
    JwtTokenValidator,
)

from standins.teams.activities import (
    Activities,
    TeamsUser,
    channel_thread,
    conversation_type_of,
    group_chat,
    personal_chat,
)
from standins.teams.issuer import BOT_FRAMEWORK, TokenIssuer

APP_ID = "00000000-0000-0000-0000-0000000000a1"
SECRET = "app-secret"
OTHER_APP = "00000000-0000-0000-0000-0000000000b2"
TENANT = "11111111-1111-1111-1111-111111111111"
ADA = TeamsUser("Ada")


class LocalKeys:
    """Stands in for the SDK's key-client cache: every JWKS URI answered from the issuer's.

    Keeps the URIs the SDK asked for, so a test sees which JWKS it would have fetched.
    """

    def __init__(self, jwks_url: str) -> None:
        self.client = jwt.PyJWKClient(jwks_url)
        self.asked: list[str] = []

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> jwt.PyJWK:
        self.asked.append(jwks_uri)
        return await asyncio.to_thread(self.client.get_signing_key, header["kid"])


@pytest.fixture
async def issuer() -> AsyncIterator[TokenIssuer]:
    async with TokenIssuer({APP_ID: SECRET, OTHER_APP: "other-secret"}) as running:
        yield running


@pytest.fixture
def sdk_keys(issuer: TokenIssuer, monkeypatch: pytest.MonkeyPatch) -> LocalKeys:
    """The SDK 1.9's JWKS seam (semi-private, hence the exact pin) pointed at the issuer."""
    keys = LocalKeys(issuer.jwks_url)
    monkeypatch.setattr(JwtTokenValidator, "_jwk_client_manager", keys)
    return keys


def validator() -> JwtTokenValidator:
    return JwtTokenValidator(AgentAuthConfiguration(client_id=APP_ID, tenant_id=TENANT))


async def test_the_issuer_serves_its_key_and_where_to_find_it(issuer: TokenIssuer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(issuer.openid_url) as answer:
            metadata = await answer.json()
        async with session.get(issuer.jwks_url) as answer:
            (key,) = (await answer.json())["keys"]
    assert metadata["issuer"] == BOT_FRAMEWORK
    assert (metadata["jwks_uri"], metadata["token_endpoint"]) == (issuer.jwks_url, issuer.token_url)
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {k: key[k] for k in ("kty", "use", "kid", "e")} == {
        "kty": "RSA", "use": "sig", "kid": issuer.kid, "e": "AQAB"}
    assert key["endorsements"] == ["msteams"]
    signing = await asyncio.to_thread(jwt.PyJWKClient(issuer.jwks_url).get_signing_key, issuer.kid)
    assert signing.key_id == issuer.kid


async def test_a_channel_token_passes_the_sdks_own_check(
    issuer: TokenIssuer, sdk_keys: LocalKeys
) -> None:
    service_url = "https://smba.trafficmanager.net/amer/"
    identity = await validator().validate_token(issuer.channel_token(APP_ID, service_url))
    assert identity.claims["aud"] == APP_ID
    assert identity.claims["iss"] == BOT_FRAMEWORK
    assert identity.get_claim_value("serviceurl") == service_url
    assert not identity.is_agent_claim()
    # The canary of the seam: for the channel's tokens the SDK 1.9 asks for the Bot
    # Framework's public JWKS, which the tests and the demo answer locally.
    assert sdk_keys.asked == [AuthenticationConstants.PUBLIC_ABS_JWKS_URL]


@pytest.mark.parametrize(("forgery", "refusal"), [
    ({"expired": True}, jwt.ExpiredSignatureError),
    ({"foreign_key": True}, jwt.InvalidSignatureError),
    ({"audience": OTHER_APP}, ValueError),
    ({"issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0", "tid": OTHER_APP},
     ValueError),
])
async def test_the_sdk_refuses_bad_channel_tokens(
    issuer: TokenIssuer, sdk_keys: LocalKeys, forgery: dict[str, Any], refusal: type[Exception]
) -> None:
    token = issuer.channel_token(APP_ID, "https://smba.trafficmanager.net/amer/", **forgery)
    with pytest.raises(refusal):
        await validator().validate_token(token)


async def test_the_token_endpoint_issues_to_known_clients_only(issuer: TokenIssuer) -> None:
    form = {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": SECRET,
            "scope": f"{BOT_FRAMEWORK}/.default"}
    answers = []
    async with aiohttp.ClientSession() as session:
        for changed in ({}, {"client_secret": "wrong"}, {"client_id": "nobody"},
                        {"grant_type": "password"}, {"scope": BOT_FRAMEWORK}):
            async with session.post(issuer.token_url, data=form | changed) as answer:
                answers.append((answer.status, await answer.json()))
    (status, issued), *refused = answers
    assert status == 200
    assert (issued["token_type"], issued["expires_in"]) == ("Bearer", 3600)
    claims = issuer.check_access_token(issued["access_token"])
    assert (claims["aud"], claims["appid"], claims["azp"]) == (BOT_FRAMEWORK, APP_ID, APP_ID)
    assert [(s, body["error"]) for s, body in refused] == [
        (401, "invalid_client"), (401, "invalid_client"), (400, "unsupported_grant_type"),
        (400, "invalid_scope")]
    assert [t.client_id for t in issuer.issued] == [APP_ID]


def test_inbound_activities_are_what_the_sdk_reads() -> None:
    build = Activities(APP_ID, "https://smba.trafficmanager.net/amer/")
    thread = channel_thread(TENANT)
    mention = Activity.model_validate(build.message(thread, ADA, "status?"))
    assert mention.text == "<at>Tenantry</at> status?"
    assert mention.get_mentions()[0].mentioned.id == f"28:{APP_ID}"
    assert mention.remove_recipient_mention().strip() == "status?"
    assert (mention.conversation.conversation_type, mention.conversation.tenant_id) == (
        "channel", TENANT)
    assert isinstance(mention.channel_data, dict)
    assert mention.channel_data["team"] == {"id": thread.team_id}
    assert mention.reply_to_id == thread.thread_root
    assert (mention.from_property.id, mention.from_property.aad_object_id) == (
        ADA.id, ADA.aad_object_id)
    assert mention.recipient is not None and mention.recipient.id == f"28:{APP_ID}"
    assert mention.channel_id == "msteams"

    chat = personal_chat(TENANT)
    direct = Activity.model_validate(build.message(chat, ADA, "hi"))
    assert (direct.text, direct.get_mentions(), direct.conversation.conversation_type) == (
        "hi", [], "personal")
    installed = Activity.model_validate(build.installation_update(chat, ADA))
    assert (installed.type, installed.action) == ("installationUpdate", "add")
    joined = Activity.model_validate(build.conversation_update(thread, ADA))
    assert [m.id for m in joined.members_added] == [f"28:{APP_ID}"]
    pressed = Activity.model_validate(build.card_action(chat, ADA, "approve", {"id": 3}))
    assert (pressed.type, pressed.name) == ("invoke", "adaptiveCard/action")
    assert pressed.value == {"action": {"type": "Action.Execute", "verb": "approve",
                                        "data": {"id": 3}}, "trigger": "manual"}
    assert len({build.message(chat, ADA, "x")["id"] for _ in range(50)}) == 50
    assert [conversation_type_of(c.id) for c in (chat, group_chat(TENANT), thread)] == [
        "personal", "groupChat", "channel"]
