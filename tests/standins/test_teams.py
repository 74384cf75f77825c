"""Tests of the Teams stand-ins, driven through the real Microsoft 365 Agents SDK 1.9.

The stand-ins are only worth having if the SDK's own JWT check, connector client and
streaming helper accept what they serve, so every protocol claim is checked there: the
SDK validates the issuer's channel tokens against its JWKS, its ``TeamsConnectorClient``
talks to the connector, and a small SDK bot (aiohttp ``CloudAdapter`` behind the SDK's
JWT middleware) receives the driver's activities and streams its answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import jwt
import pytest
from aiohttp import web
from microsoft_agents.activity import (
    Activity,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
)
from microsoft_agents.hosting.aiohttp import CloudAdapter, jwt_authorization_middleware
from microsoft_agents.hosting.core import (
    AgentAuthConfiguration,
    AuthenticationConstants,
    ClaimsIdentity,
    JwtTokenValidator,
    StreamingResponse,
    TurnContext,
)
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient
from yarl import URL

from standins.teams.activities import (
    ADAPTIVE_CARD,
    Activities,
    Conversation,
    TeamsUser,
    channel_thread,
    conversation_type_of,
    group_chat,
    personal_chat,
)
from standins.teams.connector import BotConnector
from standins.teams.conversations import NOT_STREAMABLE, STALE_SEQUENCE
from standins.teams.driver import TeamsDriver
from standins.teams.issuer import BOT_FRAMEWORK, TokenIssuer

APP_ID = "00000000-0000-0000-0000-0000000000a1"
SECRET = "app-secret"
OTHER_APP = "00000000-0000-0000-0000-0000000000b2"
TENANT = "11111111-1111-1111-1111-111111111111"
ADA = TeamsUser("Ada")
# The SDK's aiohttp middleware keeps its configuration and the caller's claims under
# str keys of the app and the request, which aiohttp 3.14 warns about; the keys are the SDK's.
SDK_STR_KEYS = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
CARD = {"type": "AdaptiveCard", "version": "1.5",
        "body": [{"type": "TextBlock", "text": "Approve?"}]}


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
async def connector(issuer: TokenIssuer) -> AsyncIterator[BotConnector]:
    async with BotConnector(issuer) as running:
        yield running


@pytest.fixture
def sdk_keys(issuer: TokenIssuer, monkeypatch: pytest.MonkeyPatch) -> LocalKeys:
    """The SDK 1.9's JWKS seam (semi-private, hence the exact pin) pointed at the issuer."""
    keys = LocalKeys(issuer.jwks_url)
    monkeypatch.setattr(JwtTokenValidator, "_jwk_client_manager", keys)
    return keys


@pytest.fixture
async def client(
    issuer: TokenIssuer, connector: BotConnector
) -> AsyncIterator[TeamsConnectorClient]:
    sdk = TeamsConnectorClient(endpoint=connector.service_url, token=issuer.access_token(APP_ID))
    yield sdk
    await sdk.close()


def validator() -> JwtTokenValidator:
    return JwtTokenValidator(AgentAuthConfiguration(client_id=APP_ID, tenant_id=TENANT))


def outgoing(conversation: Conversation, text: str = "", **fields: Any) -> Activity:
    return Activity(type=fields.pop("type", "message"), text=text, channel_id="msteams",
                    conversation=ConversationAccount(id=conversation.id), **fields)


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


async def test_the_sdk_client_sends_replies_updates_and_deletes(
    connector: BotConnector, client: TeamsConnectorClient
) -> None:
    thread = channel_thread(TENANT)
    conversations = client.conversations
    sent = await conversations.send_to_conversation(thread.id, outgoing(thread, "Working…"))
    reply = await conversations.reply_to_activity(
        thread.id, str(thread.thread_root), outgoing(thread, "Done", attachments=[
            Attachment(content_type=ADAPTIVE_CARD, content=CARD)]))
    await conversations.update_activity(thread.id, str(sent.id), outgoing(thread, "Ready."))
    temporary = await conversations.send_to_conversation(thread.id, outgoing(thread, "oops"))
    await conversations.delete_activity(thread.id, str(temporary.id))

    first, second = connector.messages(thread.id)
    assert (first.id, first.text, first.edited) == (sent.id, "Ready.", True)
    assert (second.id, second.reply_to_id, second.cards) == (reply.id, thread.thread_root, (CARD,))
    calls = connector.calls(thread.id)
    assert [(c.operation, c.method) for c in calls] == [
        ("send", "POST"), ("reply", "POST"), ("update", "PUT"), ("send", "POST"),
        ("delete", "DELETE")]
    assert {c.app_id for c in calls} == {APP_ID} and all(c.accepted for c in calls)
    assert calls[1].reply_to_id == thread.thread_root
    assert calls[2].activity is not None and calls[2].activity["text"] == "Ready."


async def test_conversation_ids_round_trip_encoded_or_not(
    issuer: TokenIssuer, connector: BotConnector, client: TeamsConnectorClient
) -> None:
    ids = [personal_chat(TENANT).id, group_chat(TENANT).id, channel_thread(TENANT).id]
    headers = {"Authorization": f"Bearer {issuer.access_token(APP_ID)}"}
    async with aiohttp.ClientSession() as session:
        for conversation_id in ids:
            await client.conversations.send_to_conversation(
                conversation_id, Activity(type="message", text="raw"))
            path = f"{connector.service_url}v3/conversations/{quote(conversation_id, safe='')}"
            url = URL(f"{path}/activities", encoded=True)
            async with session.post(url, json={"type": "message", "text": "encoded"},
                                    headers=headers) as answer:
                assert answer.status == 201
    for conversation_id in ids:
        assert [m.text for m in connector.messages(conversation_id)] == ["raw", "encoded"]


async def test_a_proactive_chat_is_one_personal_chat_per_person(
    connector: BotConnector, client: TeamsConnectorClient
) -> None:
    params = ConversationParameters(
        is_group=False, bot=ChannelAccount(id=f"28:{APP_ID}"),
        members=[ChannelAccount(id=ADA.id)], tenant_id=TENANT,
        activity=Activity(type="message", text="Your digest"))
    first = await client.conversations.create_conversation(params)
    again = await client.conversations.create_conversation(params.model_copy(update={
        "activity": None}))
    assert first.id == again.id and first.id is not None and first.id.startswith("a:1")
    assert connector.kind_of(first.id) == "personal"
    assert [(m.id, m.text) for m in connector.messages(first.id)] == [
        (first.activity_id, "Your digest")]
    with pytest.raises(aiohttp.ClientResponseError) as group:
        await client.conversations.create_conversation(params.model_copy(update={
            "is_group": True}))
    assert group.value.status == 400


async def test_a_call_without_a_valid_access_token_is_refused(
    issuer: TokenIssuer, connector: BotConnector
) -> None:
    chat = personal_chat(TENANT)
    service_url = connector.service_url
    tokens = ["", issuer.channel_token(BOT_FRAMEWORK, service_url),
              issuer.access_token(APP_ID, expired=True),
              issuer.access_token(APP_ID, audience="https://graph.microsoft.com")]
    for token in tokens:
        sdk = TeamsConnectorClient(endpoint=service_url, token=token)
        try:
            with pytest.raises(aiohttp.ClientResponseError) as refused:
                await sdk.conversations.send_to_conversation(chat.id, outgoing(chat, "hi"))
        finally:
            await sdk.close()
        assert refused.value.status == 401
    calls = connector.calls(chat.id)
    assert [(c.status, c.accepted) for c in calls] == [(401, False)] * len(tokens)
    assert calls[0].error == "no bearer token"
    assert connector.messages(chat.id) == []


async def test_typing_shows_an_indicator_and_no_message(
    connector: BotConnector, client: TeamsConnectorClient
) -> None:
    chat = group_chat(TENANT)
    await client.conversations.send_to_conversation(chat.id, outgoing(chat, type="typing"))
    assert connector.typing_count(chat.id) == 1 and connector.messages(chat.id) == []


async def test_the_stream_protocol_is_teams(
    issuer: TokenIssuer, connector: BotConnector
) -> None:
    chat = personal_chat(TENANT)
    url = f"{connector.service_url}v3/conversations/{chat.id}/activities"
    headers = {"Authorization": f"Bearer {issuer.access_token(APP_ID)}"}

    def chunk(kind: str, text: str, **info: Any) -> dict[str, Any]:
        return {"type": kind, "text": text, "entities": [{"type": "streaminfo", **info}]}

    async with aiohttp.ClientSession(headers=headers) as session:
        async def post(activity: dict[str, Any]) -> tuple[int, Any]:
            async with session.post(url, json=activity) as answer:
                return answer.status, await answer.json()

        assert (await post(chunk("typing", "Hi", streamSequence=2)))[0] == 400
        status, started = await post(chunk("typing", "Looking…", streamType="informative",
                                           streamSequence=1))
        assert status == 201
        stream_id = started["id"]
        assert connector.messages(chat.id) == []
        assert await post(chunk("typing", "A brown", streamId=stream_id, streamSequence=2)) == (
            202, {})
        stale = await post(chunk("typing", "A", streamId=stream_id, streamSequence=2))
        assert stale[0] == 202 and stale[1]["error"]["code"] == STALE_SEQUENCE
        final = chunk("message", "A brown fox.", streamId=stream_id, streamType="final")
        assert await post(final) == (202, {})
        status, again = await post(final)
    assert (status, again["error"]["code"]) == (403, "ContentStreamNotAllowed")
    (message,) = connector.messages(chat.id)
    assert (message.id, message.text, message.streamed) == (stream_id, "A brown fox.", True)


async def test_the_stand_in_names_the_refusal_as_the_sdk_expects(
    connector: BotConnector, client: TeamsConnectorClient
) -> None:
    chat = channel_thread(TENANT)
    chunk = outgoing(chat, "Hel", type="typing", entities=[
        {"type": "streaminfo", "streamType": "streaming", "streamSequence": 1}])
    with pytest.raises(aiohttp.ClientResponseError) as refused:
        await client.conversations.send_to_conversation(chat.id, chunk)
    assert refused.value.status == 400
    assert f'{{"error": {{"code": "BadArgument", "message": "{NOT_STREAMABLE}"}}}}' in str(
        refused.value)


async def test_wait_for_says_what_came_when_too_little_does(connector: BotConnector) -> None:
    with pytest.raises(TimeoutError, match=r"wanted 1 messages within 0.05s, saw 0"):
        await connector.wait_for("a:1nobody", 1, timeout=0.05)


class StreamingAgent:
    """An SDK bot that streams its answer to every message and acknowledges card actions."""

    async def on_turn(self, context: TurnContext) -> None:
        if context.activity.type == "invoke":
            await context.send_activity(Activity(type="invokeResponse", value={
                "status": 200, "body": {"statusCode": 200, "type": "application/vnd."
                                        "microsoft.activity.message", "value": "Approved"}}))
            return
        if context.activity.type != "message":
            return
        stream = StreamingResponse(context)
        stream._interval = 0.01  # Teams asks for a second between updates; not in tests
        stream.queue_informative_update("Thinking…")
        stream.queue_text_chunk("Hello")
        await stream.wait_for_queue()  # so that one update goes out before the end
        stream.queue_text_chunk(", Ada")
        await stream.end_stream()


class IssuedTokens:
    """The bot's one connection: its credentials traded at the issuer's token endpoint.

    Of the SDK's ``Connections`` and ``AccessTokenProviderBase`` it has what the adapter
    calls to answer a turn.
    """

    def __init__(self, issuer: TokenIssuer) -> None:
        self.token_url = issuer.token_url
        self.configuration = AgentAuthConfiguration(client_id=APP_ID, client_secret=SECRET,
                                                    tenant_id=TENANT)

    def get_token_provider(self, claims_identity: ClaimsIdentity, service_url: str) -> Self:
        return self

    async def get_access_token(
        self, resource_url: str, scopes: list[str], force_refresh: bool = False
    ) -> str:
        form = {"grant_type": "client_credentials", "client_id": APP_ID,
                "client_secret": SECRET, "scope": scopes[0]}
        async with aiohttp.ClientSession() as session, session.post(
            self.token_url, data=form) as answer:
            answer.raise_for_status()
            return str((await answer.json())["access_token"])


@pytest.fixture
async def bot_url(issuer: TokenIssuer, sdk_keys: LocalKeys) -> AsyncIterator[str]:
    connections: Any = IssuedTokens(issuer)  # the part of Connections a turn uses
    adapter = CloudAdapter(connection_manager=connections)
    agent = StreamingAgent()

    async def messages(request: web.Request) -> web.StreamResponse:
        answered = await adapter.process(request, agent)
        return answered if answered is not None else web.Response(status=202)

    app = web.Application(middlewares=[jwt_authorization_middleware])
    app["agent_configuration"] = AgentAuthConfiguration(client_id=APP_ID, tenant_id=TENANT)
    app.router.add_post("/api/messages", messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/api/messages"
    await runner.cleanup()


@pytest.fixture
async def teams(issuer: TokenIssuer) -> AsyncIterator[TeamsDriver]:
    async with TeamsDriver(issuer, APP_ID) as driver:
        yield driver


@SDK_STR_KEYS
async def test_a_stream_in_a_personal_chat_ends_as_one_message(
    connector: BotConnector, bot_url: str, teams: TeamsDriver
) -> None:
    chat = personal_chat(TENANT)
    inbound = Activities(APP_ID, connector.service_url).message(chat, ADA, "hi")
    assert await teams.send(bot_url, inbound) == (202, None)
    (message,) = await connector.wait_for(chat.id, 1)
    assert (message.text, message.streamed, message.reply_to_id) == (
        "Hello, Ada", True, inbound["id"])
    streamed = connector.calls(chat.id)
    assert all(c.accepted and c.app_id == APP_ID for c in streamed)
    assert {c.activity_id for c in streamed} == {message.id}
    assert [(c.status, c.activity and c.activity["entities"][0]["streamType"])
            for c in streamed] == [(201, "informative"), (202, "streaming"), (202, "final")]


@SDK_STR_KEYS
async def test_streaming_in_a_group_chat_is_refused_and_the_sdk_sends_one_message(
    connector: BotConnector, bot_url: str, teams: TeamsDriver
) -> None:
    chat = group_chat(TENANT)
    inbound = Activities(APP_ID, connector.service_url).message(chat, ADA, "hi")
    assert (await teams.send(bot_url, inbound)).status == 202
    refused, answered = connector.calls(chat.id)
    assert (refused.status, refused.error) == (400, "BadArgument")
    assert answered.accepted
    (message,) = connector.messages(chat.id)
    assert (message.text, message.streamed) == ("Hello, Ada", False)


@SDK_STR_KEYS
async def test_the_driver_signs_as_the_channel_and_the_bot_checks_it(
    issuer: TokenIssuer, connector: BotConnector, bot_url: str, teams: TeamsDriver
) -> None:
    thread = channel_thread(TENANT)
    build = Activities(APP_ID, connector.service_url)
    action = build.card_action(thread, ADA, "approve", {"request": 7}, reply_to_id="17")
    assert await teams.send(bot_url, action) == (200, {
        "statusCode": 200, "type": "application/vnd.microsoft.activity.message",
        "value": "Approved"})
    forged = issuer.channel_token(APP_ID, connector.service_url, foreign_key=True)
    expired = issuer.channel_token(APP_ID, connector.service_url, expired=True)
    for authorization in ("", f"Bearer {forged}", f"Bearer {expired}"):
        status, _ = await teams.send(bot_url, build.message(thread, ADA, "hi"),
                                     authorization=authorization)
        assert status == 401
    assert connector.calls() == []
