"""The Slack transport: Bolt's ``AsyncApp`` with Tenantry's listeners, on our aiohttp app.

Bolt verifies each request's signature, runs OAuth and authorises each request against
the encrypted installation store. In front of it, ``_dispatch`` answers what Bolt would
turn into a 500 (unreadable signature headers: 401; malformed bodies: 400). A request
sent again within the signature's five minutes passes Bolt's check; the event-id claim
(``records.first_delivery``) keeps it from starting a second run.
Listeners only turn the payload into a typed ``Request``, acknowledge, and hand the
work to the executor; nothing slow runs before the acknowledgement
(``process_before_response`` keeps Bolt from spawning untracked tasks of its own), and
the executor starts the work once the burst of requests it came in has been answered.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bots.executor import Executor
from bots.runtime import Runtime
from bots.slack import render
from bots.slack.answer import Origin, Request, SlackAnswers, Surface
from bots.slack.authorize import StoredBotAuthorize
from bots.slack.clients import WorkspaceClients
from bots.slack.manifest import bot_scopes
from bots.slack.oauth_flow import CALLBACKS, TenantOAuthFlow
from bots.slack.records import first_delivery
from bots.slack.settings import SlackSettings
from bots.web import Mount
from core.logs import log
from installs.links import InstallLinkError, resolve
from installs.oauth import TenantClaimState, uninstall
from installs.slack_store import SlackInstallationStore

WORKSPACE_UNLINKED = "workspace.unlinked"
"""Audit event: a workspace's tokens were deleted and its link revoked."""

BOLT = web.AppKey("slack_bolt", AsyncApp)
ANSWERS = web.AppKey("slack_answers", SlackAnswers)


MALFORMED = (AttributeError, KeyError, IndexError, TypeError, ValueError)
"""What Bolt's payload handling raises on a signed body that is not the shape Slack sends
(``json.JSONDecodeError`` is a ``ValueError``): answered 400, where anything else (a
database that is down while authorising) stays a 500, which Slack retries."""

_MENTION = re.compile(r"<@[A-Z0-9]+>")
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


def _id(value: object) -> str | None:
    """A Slack id from a raw payload field, or ``None`` if it is absent or not an id."""
    return value if isinstance(value, str) and _ID.match(value) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _origin(context: AsyncBoltContext, user_id: object, user_team: object) -> Origin | None:
    """Who sent a request, through which installation; ``None`` if the ids are unusable.

    The installation comes from Bolt's authorisation (``authorizations[0]``, the
    command's or action's team), never from the channel or the user's own team: a
    Slack Connect channel carries users of other workspaces.
    """
    org = bool(context.is_enterprise_install)
    enterprise = _id(context.enterprise_id)
    team = None if org else _id(context.team_id)
    user = _id(user_id)
    acting_team = (_id(user_team) or _id(context.team_id) or enterprise) if org else team
    if user is None or acting_team is None or (team is None and enterprise is None):
        return None
    return Origin(enterprise_id=enterprise, team_id=team, is_enterprise_install=org,
                  user_team=acting_team, user_id=user)


def _malformed_ids(context: AsyncBoltContext) -> bool:
    """Whether a payload's workspace or user ids are not Slack ids.

    Authorisation looks the installation up by these ids; a number or an object there
    is no Slack payload, and would otherwise reach the database as a query parameter.
    """
    ids = (context.enterprise_id, context.team_id, context.user_id)
    return any(value is not None and _id(value) is None for value in ids)


def build_bolt(runtime: Runtime, executor: Executor, settings: SlackSettings,
               public_url: str) -> tuple[AsyncApp, SlackAnswers]:
    """The Bolt app of this deployment, with its listeners bound to the executor."""
    assert settings.signing_secret is not None and settings.client_secret is not None
    store = SlackInstallationStore(runtime.db, runtime.keyring)
    clients = WorkspaceClients(store, settings.api_url)
    answers = SlackAnswers(runtime, clients, executor, settings.command)
    states = TenantClaimState(runtime.db, runtime.keyring)
    base_client = clients.with_token(None)
    oauth = AsyncOAuthSettings(
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        scopes=bot_scopes(),
        installation_store=store,
        state_store=states,
        install_page_rendering_enabled=False,  # the install link is the page: straight to Slack
        callback_options=CALLBACKS,
        redirect_uri=public_url.rstrip("/") + "/slack/oauth_redirect",
    )
    authorize = StoredBotAuthorize(store)
    app = AsyncApp(
        signing_secret=settings.signing_secret.get_secret_value(),
        client=base_client,
        oauth_flow=TenantOAuthFlow(db=runtime.db, keyring=runtime.keyring, state_store=states,
                                   client=base_client, settings=oauth),
        # Bolt takes an AsyncAuthorize instance here; its annotation names only functions.
        authorize=authorize,  # type: ignore[arg-type]
        request_verification_enabled=True,
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )

    def request(surface: Surface, context: AsyncBoltContext, event: dict[str, Any],
                prompt: str, channel: object, thread_ts: object, event_id: object,
                user_team: object) -> Request | None:
        origin = _origin(context, event.get("user"), user_team)
        if origin is None or _id(channel) is None or not (isinstance(event_id, str)
                                                          and event_id):
            log.info("slack request without usable ids ignored", surface=surface)
            return None
        return Request(origin=origin, surface=surface, channel=str(channel),
                       thread_ts=thread_ts if isinstance(thread_ts, str) else None,
                       event_id=event_id, prompt=prompt)

    @app.command(settings.command)
    async def on_command(ack: Any, command: dict[str, Any], context: AsyncBoltContext) -> None:
        prompt = str(command.get("text") or "").strip()
        if not prompt:
            await ack(render.ask_hint(settings.command))
            return
        trigger = command.get("trigger_id")
        made = request("command", context, {"user": command.get("user_id")}, prompt,
                       command.get("channel_id"), None,
                       f"command:{trigger}" if isinstance(trigger, str) and trigger else None,
                       command.get("team_id"))
        if made is None:
            await ack(render.refusal("unreadable"))
            return
        await ack(render.ACK_WORKING)
        answers.submit(made)

    @app.event("app_mention")
    async def on_mention(ack: Any, event: dict[str, Any], body: dict[str, Any],
                         context: AsyncBoltContext) -> None:
        await ack()
        prompt = _MENTION.sub("", str(event.get("text") or "")).strip()
        made = request("mention", context, event, prompt, event.get("channel"),
                       event.get("thread_ts") or event.get("ts"), body.get("event_id"),
                       event.get("user_team") or event.get("team") or body.get("team_id"))
        if made is not None:
            answers.submit(made)

    @app.event("message")
    async def on_message(ack: Any, event: dict[str, Any], body: dict[str, Any],
                         context: AsyncBoltContext) -> None:
        await ack()
        if (event.get("channel_type") != "im" or event.get("subtype")
                or event.get("bot_id") or not isinstance(event.get("text"), str)):
            return
        made = request("dm", context, event, str(event["text"]).strip(), event.get("channel"),
                       event.get("thread_ts"), body.get("event_id"),
                       event.get("user_team") or event.get("team") or body.get("team_id"))
        if made is not None:
            answers.submit(made)

    @app.action(render.RESUME_ACTION)
    async def on_resume(ack: Any, body: dict[str, Any], action: dict[str, Any],
                        context: AsyncBoltContext) -> None:
        await ack()
        user = _dict(body.get("user"))
        origin = _origin(context, user.get("id"), user.get("team_id"))
        run_id = action.get("value")
        channel = _dict(body.get("channel")).get("id") or _dict(body.get("container")).get(
            "channel_id")
        if origin is None or not isinstance(run_id, str) or not run_id or _id(channel) is None:
            return
        executor.submit(f"resume:{run_id}", lambda: answers.resume(origin, run_id, str(channel)))

    @app.event("app_home_opened")
    async def on_home(ack: Any, event: dict[str, Any], body: dict[str, Any],
                      context: AsyncBoltContext) -> None:
        await ack()
        if event.get("tab") != "home":
            return
        origin = _origin(context, event.get("user"), body.get("team_id") or context.team_id)
        event_id = body.get("event_id")
        if origin is None or not isinstance(event_id, str):
            return
        executor.submit(f"home:{event_id}", lambda: answers.home(origin))

    @app.action(render.VERIFY_ACTION)
    async def on_verify(ack: Any, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        user = _dict(body.get("user"))
        origin = _origin(context, user.get("id"), user.get("team_id"))
        if origin is not None:
            executor.submit(f"verify:{origin.principal}", lambda: answers.home(origin, verify=True))

    async def forget(enterprise: str | None, team: str | None, org: bool, event_id: str,
                     why: str, users: list[str]) -> None:
        if not await first_delivery(runtime.db, event_id, enterprise or team or "-"):
            return
        if why == "user_tokens_revoked":
            for user in users:
                await store.async_delete_installation(enterprise_id=enterprise, team_id=team,
                                                      user_id=user)
            log.info("slack user tokens forgotten", team_id=team, count=len(users))
            return
        before = await resolve(runtime.db, enterprise, team, org)
        was_linked = (before is not None and before.active and before.team_id == team
                      and before.enterprise_id == enterprise)
        link = await uninstall(runtime.db, runtime.keyring, enterprise, team, org)
        authorize.forget(enterprise, team)
        if link is not None and was_linked:
            await runtime.audit.record(link.tenant_id, WORKSPACE_UNLINKED, {
                "team_id": team, "enterprise_id": enterprise, "reason": why,
            })
        log.info("slack installation removed", team_id=team, enterprise_id=enterprise,
                 reason=why, tenant_id=None if link is None else link.tenant_id)

    def submit_forget(context: AsyncBoltContext, body: dict[str, Any], why: str,
                      users: list[str]) -> None:
        org = bool(context.is_enterprise_install)
        enterprise, team = _id(context.enterprise_id), None if org else _id(context.team_id)
        event_id = body.get("event_id")
        if not isinstance(event_id, str) or not (enterprise or team):
            return

        async def job() -> None:
            await forget(enterprise, team, org, event_id, why, users)

        # Forgetting is short and must happen even if shutdown comes first: its own park.
        executor.submit(f"slack:{event_id}", job, park=job)

    @app.event("app_uninstalled")
    async def on_uninstalled(ack: Any, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        submit_forget(context, body, "app_uninstalled", [])

    @app.event("tokens_revoked")
    async def on_revoked(ack: Any, body: dict[str, Any], event: dict[str, Any],
                         context: AsyncBoltContext) -> None:
        await ack()
        tokens = _dict(event.get("tokens"))
        bots, users = tokens.get("bot"), tokens.get("oauth")
        if isinstance(bots, list) and bots:
            submit_forget(context, body, "tokens_revoked", [])
        elif isinstance(users, list) and users:
            submit_forget(context, body, "user_tokens_revoked", [u for u in users if _id(u)])

    @app.event(re.compile(".*"))
    async def on_other_event(ack: Any) -> None:
        await ack()

    @app.error
    async def on_error(error: Exception) -> BoltResponse:
        if isinstance(error, MALFORMED):
            log.warning("malformed slack payload", error=f"{type(error).__name__}: {error}"[:200])
            return BoltResponse(status=400, body="request body is not a Slack payload")
        log.error("slack request failed", error=repr(error)[:200], exc_info=error)
        return BoltResponse(status=500, body="")

    return app, answers


async def _dispatch(request: web.Request) -> web.Response:
    """Hand a request to Bolt, refusing first what Bolt would answer with a 500.

    Bolt verifies the signature; its verifier raises on a timestamp that is no number or
    a signature that is no ASCII, which is answered 401 here instead. A body that is not
    a Slack payload, or whose ids are not Slack ids, is answered 400.
    """
    raw = await request.read()
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        return web.Response(status=400, text="request body is not UTF-8")
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not (timestamp.isascii() and timestamp.isdigit() and signature.isascii()):
        log.warning("slack request refused", reason="unsigned")
        return web.Response(status=401, text="refused: unsigned")
    try:
        bolt_request = AsyncBoltRequest(body=body, query=request.query_string,
                                        headers=dict(request.headers))
        payload = bolt_request.body
        if not isinstance(payload, dict) or not payload:
            raise TypeError(f"a Slack payload is an object, not {type(payload).__name__}")
        if _malformed_ids(bolt_request.context):
            log.warning("slack payload with malformed ids refused")
            return web.Response(status=400, text="request body is not a Slack payload")
        response = await request.app[BOLT].async_dispatch(bolt_request)
    except MALFORMED as exc:
        log.warning("malformed slack payload", error=f"{type(exc).__name__}: {exc}"[:200])
        return web.Response(status=400, text="request body is not a Slack payload")
    if response.status == 404:
        return web.Response(status=200, text="")
    return await to_aiohttp_response(response)


async def _install(request: web.Request) -> web.Response:
    """Bolt's install page, or at once, before Slack, why the install link is dead."""
    flow = request.app[BOLT].oauth_flow
    assert flow is not None
    try:
        response = await flow.handle_installation(await to_bolt_request(request))
    except InstallLinkError as dead:
        log.info("slack install refused", reason=dead.reason)
        return web.Response(status=400, text=render.install_failed(dead.reason),
                            content_type="text/html")
    return await to_aiohttp_response(response)


async def _callback(request: web.Request) -> web.Response:
    flow = request.app[BOLT].oauth_flow
    assert flow is not None
    return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))


def add_routes(app: web.Application) -> None:
    """Slack's three endpoints; the Bolt app behind them is set at startup."""
    app.router.add_post("/slack/events", _dispatch)
    app.router.add_get("/slack/install", _install)
    app.router.add_get("/slack/oauth_redirect", _callback)


def mounted(settings: SlackSettings, public_url: str) -> Mount:
    """Startup half of the Slack transport: build Bolt with the live runtime."""

    async def mount(app: web.Application, runtime: Runtime, executor: Executor) -> None:
        bolt, answers = build_bolt(runtime, executor, settings, public_url)
        app[BOLT] = bolt
        app[ANSWERS] = answers
        runtime.deliverers.append(answers.deliver)

    return mount
