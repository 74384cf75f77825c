"""Tests of the Slack Web API stand-in, driven through the real slack_sdk and slack_bolt code.

Going through the real clients is the point: the stand-in is only worth having if the
production request building, response parsing, retry handling and OAuth/authorize code
accept what it answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from slack_bolt.authorization.authorize_result import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.oauth.installation_store import FileInstallationStore
from slack_sdk.oauth.state_store import FileOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from standins.slack.api import DEFAULT_SCOPES, SlackStandIn, SlackUser

ADMIN = SlackUser("U1ADMIN", name="ada", real_name="Ada Admin", is_admin=True)
OWNER = SlackUser("U1OWNER", name="otto", is_admin=True, is_owner=True, is_primary_owner=True)
MEMBER = SlackUser("U1MEMBER", name="mia")
GRID_USER = SlackUser("W3USER", name="gil", is_org_admin=True)
REDIRECT = "https://tenantry.example.com/slack/oauth_redirect"
T1_TOKEN = "xoxb-t1"
# slack_sdk 3.48's oauth_v2_access sends the client credentials through aiohttp.BasicAuth,
# which aiohttp 3.14 deprecates; the SDK, not our code, has to move to encode_basic_auth.
SDK_BASIC_AUTH_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning:slack_sdk"
)


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        standin.add_workspace("T1", "xoxb-t1", users=[ADMIN, OWNER, MEMBER], channels=["C1"])
        standin.add_workspace("T2", "xoxb-t2", channels=["C2"], name="Beta")
        standin.add_workspace("T3", "xoxb-t3", "E1", users=[GRID_USER], channels=["C3"])
        standin.add_workspace("E1", "xoxb-e1", "E1", enterprise_name="Starship")
        yield standin


def _client(slack: SlackStandIn, token: str | None = T1_TOKEN) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=slack.base_url)


def _error(raised: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(raised.value.response["error"])


async def test_base_url_ends_with_a_slash_and_needs_a_running_server() -> None:
    standin = SlackStandIn()
    with pytest.raises(RuntimeError, match="async with"):
        _ = standin.base_url
    async with standin:
        assert standin.base_url.startswith("http://127.0.0.1:")
        assert standin.base_url.endswith("/api/")


async def test_auth_test_names_the_tokens_workspace_and_scopes(slack: SlackStandIn) -> None:
    response = await _client(slack).auth_test()
    assert response.status_code == 200
    assert response.data == {
        "ok": True,
        "url": "https://t1.slack.com/",
        "team": "Workspace T1",
        "user": "tenantry",
        "team_id": "T1",
        "user_id": "UT1BOT",
        "bot_id": "BT1",
        "is_enterprise_install": False,
    }
    assert response.headers["X-OAuth-Scopes"] == ",".join(DEFAULT_SCOPES)
    grid = await _client(slack, "xoxb-t3").auth_test()
    assert (grid["team_id"], grid["enterprise_id"], grid["user_id"]) == ("T3", "E1", "WT3BOT")
    org = await _client(slack, "xoxb-e1").auth_test()
    assert (org["team_id"], org["enterprise_id"], org["is_enterprise_install"]) == (
        "E1",
        "E1",
        True,
    )
    assert org["url"] == "https://e1.enterprise.slack.com/"


async def test_post_in_thread_then_update_shows_the_final_text(slack: SlackStandIn) -> None:
    client = _client(slack)
    parent = await client.chat_postMessage(channel="C1", text="question")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Working…*"}}]
    reply = await client.chat_postMessage(
        channel="C1", text="Working…", blocks=blocks, thread_ts=parent["ts"]
    )
    assert reply["channel"] == "C1"
    assert reply["message"]["thread_ts"] == parent["ts"]
    assert reply["message"]["blocks"] == blocks
    assert (reply["message"]["bot_id"], reply["message"]["user"]) == ("BT1", "UT1BOT")
    assert float(reply["ts"]) > float(parent["ts"])

    updated = await client.chat_update(channel="C1", ts=reply["ts"], text="Done.")
    assert (updated["ts"], updated["text"]) == (reply["ts"], "Done.")

    parent_message, reply_message = slack.messages("C1")
    assert parent_message.text == "question" and parent_message.thread_ts is None
    assert (reply_message.text, reply_message.thread_ts) == ("Done.", parent["ts"])
    assert reply_message.blocks == tuple(blocks)
    assert reply_message.edited and reply_message.team_id == "T1"


async def test_post_without_content_or_channel_is_refused(slack: SlackStandIn) -> None:
    client = _client(slack)
    with pytest.raises(SlackApiError) as no_channel:
        await client.api_call("chat.postMessage", json={"text": "hi"})
    assert _error(no_channel) == "channel_not_found"
    with pytest.raises(SlackApiError) as no_text:
        await client.api_call("chat.postMessage", json={"channel": "C1"})
    assert _error(no_text) == "no_text"


async def test_form_encoded_body_and_token_field_are_understood(slack: SlackStandIn) -> None:
    client = _client(slack, token=None)
    blocks = '[{"type": "divider"}]'
    data = {"token": "xoxb-t2", "channel": "C2", "text": "form", "blocks": blocks}
    await client.api_call("chat.postMessage", data=data)
    (call,) = slack.calls("chat.postMessage")
    assert (call.token, call.team_id) == ("xoxb-t2", "T2")
    assert call.params["blocks"] == [{"type": "divider"}]
    assert "token" not in call.params


async def test_a_token_in_a_json_body_or_the_query_does_not_authenticate(
    slack: SlackStandIn,
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await AsyncWebClient(base_url=slack.base_url).api_call(
            "auth.test", json={"token": "xoxb-t1"}, headers={"Authorization": ""}
        )
    assert _error(raised) == "not_authed"
    async with aiohttp.ClientSession() as session:
        url = f"{slack.base_url}users.info?user=U1ADMIN&token=xoxb-t1"
        async with session.get(url) as response:
            assert (response.status, await response.json()) == (
                200,
                {"ok": False, "error": "not_authed"},
            )


async def test_ephemeral_messages_are_kept_apart(slack: SlackStandIn) -> None:
    response = await _client(slack).chat_postEphemeral(channel="C1", user="U1MEMBER", text="psst")
    assert set(response.data) == {"ok", "message_ts"}
    assert slack.messages("C1") == []
    (ephemeral,) = slack.ephemeral_messages("C1")
    assert (ephemeral.ts, ephemeral.ephemeral_to, ephemeral.text) == (
        response["message_ts"],
        "U1MEMBER",
        "psst",
    )


async def test_sdk_chat_stream_starts_appends_and_stops(slack: SlackStandIn) -> None:
    client = _client(slack)
    parent = await client.chat_postMessage(channel="D1", text="hello?")
    streamer = await client.chat_stream(channel="D1", thread_ts=parent["ts"], buffer_size=8)
    assert await streamer.append(markdown_text="Hi") is None
    started = await streamer.append(markdown_text=" there, ")
    assert started is not None and started["ts"] == streamer.ts
    await streamer.append(markdown_text="how can I help?")
    feedback = [{"type": "context", "elements": [{"type": "mrkdwn", "text": "AI"}]}]
    stopped = await streamer.stop(markdown_text="!", blocks=feedback)

    assert stopped["message"]["text"] == "Hi there, how can I help?!"
    assert stopped["message"]["blocks"] == feedback
    methods = [call.method for call in slack.calls(token="xoxb-t1")]
    assert methods[1:] == ["chat.startStream", "chat.appendStream", "chat.stopStream"]
    start = slack.calls("chat.startStream")[0].params
    assert start["thread_ts"] == parent["ts"]
    assert start["chunks"] == [{"type": "markdown_text", "text": "Hi there, "}]
    streamed = slack.messages("D1")[1]
    assert (streamed.text, streamed.stream_state) == ("Hi there, how can I help?!", "stopped")
    assert streamed.thread_ts == parent["ts"] and streamed.blocks == tuple(feedback)


async def test_streams_take_markdown_text_and_need_recipients_in_channels(
    slack: SlackStandIn,
) -> None:
    client = _client(slack)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_startStream(channel="C1", thread_ts="1.000001", markdown_text="x")
    assert _error(raised) == "missing_recipient_user_id"
    started = await client.chat_startStream(
        channel="C1",
        thread_ts="1.000001",
        recipient_team_id="T1",
        recipient_user_id="U1MEMBER",
        markdown_text="Part one. ",
    )
    assert set(started.data) == {"ok", "channel", "ts"}
    await client.chat_appendStream(channel="C1", ts=started["ts"], markdown_text="Part two.")
    assert slack.messages("C1")[0].stream_state == "streaming"
    await client.chat_stopStream(channel="C1", ts=started["ts"])
    with pytest.raises(SlackApiError) as after_stop:
        await client.chat_appendStream(channel="C1", ts=started["ts"], markdown_text="late")
    assert _error(after_stop) == "message_not_in_streaming_state"
    assert slack.messages("C1")[0].text == "Part one. Part two."


async def test_expired_stream_refuses_append_and_stop_but_can_be_updated(
    slack: SlackStandIn,
) -> None:
    client = _client(slack)
    started = await client.chat_startStream(channel="D1", thread_ts="1.000001", markdown_text="Hal")
    assert slack.expire_streams() == 1
    for call in (client.chat_appendStream, client.chat_stopStream):
        with pytest.raises(SlackApiError) as raised:
            await call(channel="D1", ts=started["ts"], markdown_text="f")
        assert _error(raised) == "message_not_in_streaming_state"
    assert slack.messages("D1")[0].text == "Hal"

    await client.chat_update(channel="D1", ts=started["ts"], text="Half an answer, then a timeout.")
    (message,) = slack.messages("D1")
    assert (message.text, message.stream_state, message.edited) == (
        "Half an answer, then a timeout.",
        "expired",
        True,
    )


async def test_streams_expire_after_the_idle_timeout() -> None:
    now = [100.0]
    async with SlackStandIn(stream_idle_timeout=30, clock=lambda: now[0]) as slack:
        slack.add_workspace("T1", "xoxb-t1")
        client = _client(slack)
        started = await client.chat_startStream(channel="D1", thread_ts="1.1", markdown_text="a")
        now[0] += 29
        await client.chat_appendStream(channel="D1", ts=started["ts"], markdown_text="b")
        now[0] += 31
        assert slack.messages("D1")[0].stream_state == "expired"
        with pytest.raises(SlackApiError) as raised:
            await client.chat_appendStream(channel="D1", ts=started["ts"], markdown_text="c")
        assert _error(raised) == "message_not_in_streaming_state"


async def test_rate_limit_is_retried_after_retry_after(slack: SlackStandIn) -> None:
    slack.fail_next("chat.postMessage", retry_after=1)
    client = AsyncWebClient(
        token="xoxb-t1",
        base_url=slack.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    posted = await client.chat_postMessage(channel="C1", text="eventually")
    assert posted["ok"]
    limited, accepted = slack.calls("chat.postMessage")
    assert (limited.status, limited.error) == (429, "ratelimited")
    assert (accepted.status, accepted.error) == (200, None)
    # The handler sleeps int(Retry-After) plus up to one second of jitter.
    assert 1.0 <= accepted.at - limited.at < 2.5


async def test_rate_limit_surfaces_without_a_retry_handler(slack: SlackStandIn) -> None:
    slack.fail_next("chat.update", retry_after=7)
    with pytest.raises(SlackApiError) as raised:
        await _client(slack).chat_update(channel="C1", ts="1.1", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert _error(raised) == "ratelimited"


async def test_scripted_errors_answer_ok_false_once(slack: SlackStandIn) -> None:
    slack.fail_next("views.publish", "not_enabled")
    client = _client(slack)
    view = {"type": "home", "blocks": []}
    with pytest.raises(SlackApiError) as raised:
        await client.views_publish(user_id="U1ADMIN", view=view)
    assert (raised.value.response.status_code, _error(raised)) == (200, "not_enabled")
    assert (await client.views_publish(user_id="U1ADMIN", view=view))["ok"]


async def test_unknown_revoked_and_missing_tokens_are_refused(slack: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as unknown:
        await _client(slack, "xoxb-nobody").chat_postMessage(channel="C1", text="hi")
    assert _error(unknown) == "invalid_auth"
    slack.revoke_token("xoxb-t2")
    with pytest.raises(SlackApiError) as revoked:
        await _client(slack, "xoxb-t2").auth_test()
    assert _error(revoked) == "invalid_auth"
    slack.revoke_token("xoxb-t3", error="token_revoked")
    with pytest.raises(SlackApiError) as token_revoked:
        await _client(slack, "xoxb-t3").auth_test()
    assert _error(token_revoked) == "token_revoked"
    with pytest.raises(SlackApiError) as missing:
        await _client(slack, None).auth_test()
    assert _error(missing) == "not_authed"

    refused = slack.calls(token="xoxb-nobody")
    assert [(c.method, c.team_id, c.error) for c in refused] == [
        ("chat.postMessage", None, "invalid_auth")
    ]
    assert slack.calls("auth.test", team_id="T2")[0].error == "invalid_auth"
    assert slack.messages("C1") == []


async def test_reinstall_adds_a_token_and_unknown_methods_are_named(slack: SlackStandIn) -> None:
    slack.add_workspace("T1", "xoxb-t1-new", users=[ADMIN])
    assert (await _client(slack, "xoxb-t1-new").auth_test())["team_id"] == "T1"
    assert (await _client(slack, "xoxb-t1").auth_test())["team_id"] == "T1"
    with pytest.raises(ValueError, match="belongs to workspace T1"):
        slack.add_workspace("T2", "xoxb-t1")
    with pytest.raises(SlackApiError) as raised:
        await _client(slack).api_call("chat.postMesage", json={})
    assert raised.value.response.data == {
        "ok": False,
        "error": "unknown_method",
        "req_method": "chat.postMesage",
    }


async def test_a_tenants_token_cannot_write_into_another_tenants_channel_or_message(
    slack: SlackStandIn,
) -> None:
    with pytest.raises(SlackApiError) as foreign_channel:
        await _client(slack, "xoxb-t2").chat_postMessage(channel="C1", text="leak")
    assert _error(foreign_channel) == "channel_not_found"
    mine = await _client(slack).chat_postMessage(channel="D9", text="T1's answer")
    with pytest.raises(SlackApiError) as foreign_message:
        await _client(slack, "xoxb-t2").chat_update(channel="D9", ts=mine["ts"], text="edited")
    assert _error(foreign_message) == "cant_update_message"
    assert [m.text for m in slack.messages("D9")] == ["T1's answer"]
    org_post = await _client(slack, "xoxb-e1").chat_postMessage(channel="C3", text="org-wide")
    assert slack.messages("C3")[0].team_id == "T3" and org_post["message"]["user"] == "WE1BOT"


async def test_users_info_reports_admin_and_owner_flags(slack: SlackStandIn) -> None:
    client = _client(slack)
    flags = {}
    for user in (ADMIN, OWNER, MEMBER):
        info = (await client.users_info(user=user.id))["user"]
        flags[user.id] = (info["is_admin"], info["is_owner"], info["is_primary_owner"])
        assert info["team_id"] == "T1" and "enterprise_user" not in info
    assert flags == {
        "U1ADMIN": (True, False, False),
        "U1OWNER": (True, True, True),
        "U1MEMBER": (False, False, False),
    }
    assert slack.calls("users.info")[0].params == {"user": "U1ADMIN"}
    localised = await client.users_info(user="U1ADMIN", include_locale=True)
    assert localised["user"]["locale"] == "en-US"
    with pytest.raises(SlackApiError) as other_tenant:
        await _client(slack, "xoxb-t2").users_info(user="U1ADMIN")
    assert _error(other_tenant) == "user_not_found"


async def test_users_info_on_grid_carries_the_enterprise_user(slack: SlackStandIn) -> None:
    for token in ("xoxb-t3", "xoxb-e1"):
        info = (await _client(slack, token).users_info(user="W3USER"))["user"]
        assert (info["team_id"], info["is_admin"]) == ("T3", False)
        assert info["enterprise_user"]["enterprise_id"] == "E1"
        assert info["enterprise_user"]["is_admin"] is True


async def test_views_publish_keeps_the_latest_view_per_team_and_user(slack: SlackStandIn) -> None:
    client = _client(slack)
    first = await client.views_publish(
        user_id="U1ADMIN", view={"type": "home", "blocks": [{"type": "divider"}]}
    )
    assert first["view"]["type"] == "home" and first["view"]["team_id"] == "T1"
    second = await client.views_publish(
        user_id="U1ADMIN", view={"type": "home", "blocks": []}, hash=first["view"]["hash"]
    )
    assert second["view"]["id"] == first["view"]["id"]
    await _client(slack, "xoxb-t2").views_publish(user_id="U1ADMIN", view={"type": "home"})
    views = slack.published_views("U1ADMIN")
    assert set(views) == {"T1", "T2"} and views["T1"]["blocks"] == []
    with pytest.raises(SlackApiError) as stale:
        await client.views_publish(user_id="U1ADMIN", view={"type": "home"}, hash="stale")
    assert _error(stale) == "hash_conflict"
    with pytest.raises(SlackApiError) as modal:
        await client.views_publish(user_id="U1ADMIN", view={"type": "modal"})
    assert _error(modal) == "invalid_arguments"


def _oauth_flow(slack: SlackStandIn, tmp_path: Path) -> AsyncOAuthFlow:
    settings = AsyncOAuthSettings(
        client_id=slack.client_id,
        client_secret=slack.client_secret,
        scopes=list(DEFAULT_SCOPES),
        redirect_uri=REDIRECT,
        installation_store=FileInstallationStore(base_dir=str(tmp_path / "installs")),
        state_store=FileOAuthStateStore(expiration_seconds=600, base_dir=str(tmp_path / "s")),
    )
    return AsyncOAuthFlow(client=AsyncWebClient(base_url=slack.base_url), settings=settings)


@SDK_BASIC_AUTH_DEPRECATION
async def test_oauth_workspace_install_parses_into_a_bolt_installation(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    slack.add_install_code("code-t3", "T3", "W3USER", redirect_uri=REDIRECT)
    installation = await _oauth_flow(slack, tmp_path).run_installation("code-t3")
    assert installation is not None
    assert (installation.team_id, installation.team_name) == ("T3", "Workspace T3")
    assert (installation.enterprise_id, installation.enterprise_name) == ("E1", "Org E1")
    assert installation.is_enterprise_install is False
    assert (installation.bot_token, installation.bot_id) == ("xoxb-t3", "BT3")
    assert installation.bot_user_id == "WT3BOT" and installation.user_id == "W3USER"
    assert installation.bot_scopes == list(DEFAULT_SCOPES)
    assert installation.app_id == slack.app_id and installation.user_token is None
    call = slack.calls("oauth.v2.access")[0]
    assert call.token is None and call.params["code"] == "code-t3"
    assert "client_secret" not in call.params  # sent by HTTP Basic auth, as Slack advises


@SDK_BASIC_AUTH_DEPRECATION
async def test_oauth_org_wide_install_has_no_team_and_authorizes(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    slack.add_install_code("code-org", "E1", "W3USER", user_token="xoxp-w3", user_scopes=["a"])
    flow = _oauth_flow(slack, tmp_path)
    raw = await flow.client.oauth_v2_access(
        client_id=slack.client_id, client_secret=slack.client_secret, code="code-org"
    )
    assert raw["team"] is None and raw["is_enterprise_install"] is True
    assert raw["enterprise"] == {"id": "E1", "name": "Starship"}
    assert raw["authed_user"] == {
        "id": "W3USER",
        "scope": "a",
        "access_token": "xoxp-w3",
        "token_type": "user",
    }
    slack.add_install_code("code-org-2", "E1", "W3USER")
    installation = await flow.run_installation("code-org-2")
    assert installation is not None
    assert (installation.team_id, installation.enterprise_id) == (None, "E1")
    assert installation.is_enterprise_install is True
    assert installation.enterprise_url == "https://e1.enterprise.slack.com/"
    await flow.settings.installation_store.async_save(installation)

    context = AsyncBoltContext(client=AsyncWebClient(base_url=slack.base_url))
    context["is_enterprise_install"] = True
    result = await flow.settings.authorize(
        context=context, enterprise_id="E1", team_id=None, user_id="W3USER"
    )
    assert isinstance(result, AuthorizeResult)
    assert (result.bot_token, result.bot_id, result.bot_user_id) == ("xoxb-e1", "BE1", "WE1BOT")
    assert result.enterprise_id == "E1" and result.bot_scopes == list(DEFAULT_SCOPES)


@SDK_BASIC_AUTH_DEPRECATION
async def test_oauth_refuses_bad_credentials_codes_and_redirects(slack: SlackStandIn) -> None:
    slack.add_install_code("code-t1", "T1", "U1ADMIN", redirect_uri=REDIRECT)
    client = AsyncWebClient(base_url=slack.base_url)
    attempts = [
        ("nope", slack.client_secret, "code-t1", REDIRECT, "invalid_client_id"),
        (slack.client_id, "wrong", "code-t1", REDIRECT, "bad_client_secret"),
        (slack.client_id, slack.client_secret, "unknown", REDIRECT, "invalid_code"),
        (slack.client_id, slack.client_secret, "code-t1", "https://evil.test/", "bad_redirect_uri"),
        (slack.client_id, slack.client_secret, "code-t1", REDIRECT, "invalid_code"),
    ]
    for client_id, secret, code, redirect_uri, error in attempts:
        with pytest.raises(SlackApiError) as raised:
            await client.oauth_v2_access(
                client_id=client_id, client_secret=secret, code=code, redirect_uri=redirect_uri
            )
        assert _error(raised) == error
    slack.add_install_code("code-t1-again", "T1", "U1ADMIN")
    form = {"client_id": slack.client_id, "client_secret": slack.client_secret}
    exchanged = await client.api_call("oauth.v2.access", data={**form, "code": "code-t1-again"})
    assert exchanged["access_token"] == "xoxb-t1" and exchanged["enterprise"] is None
