"""The Slack transport: Bolt's ``AsyncApp`` with Tenantry's listeners, on our aiohttp app.

Bolt verifies each request's signature, runs OAuth and authorises each request against
the encrypted installation store; the listeners (``bots.slack.listeners``) acknowledge
and hand the work to the executor. Nothing slow runs before the acknowledgement
(``process_before_response`` keeps Bolt from spawning untracked tasks of its own), and
the executor starts the work once the burst of requests it came in has been answered.

In front of Bolt, ``_dispatch`` answers what Bolt would turn into a 500 (unreadable
signature headers: 401; malformed bodies: 400) and refuses a request with two
signatures or two timestamps (401) rather than let one of them win. A request sent again within its
signature's five minutes passes Bolt's check; the event-id claim
(``records.first_delivery``) keeps it from starting a second run.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest

from bots.executor import Executor
from bots.runtime import Runtime
from bots.slack import render
from bots.slack.answer import SlackAnswers, SlackDelivery
from bots.slack.authorize import StoredBotAuthorize
from bots.slack.clients import WorkspaceClients
from bots.slack.digests import SlackPoster
from bots.slack.installed import apologise_unless_installed
from bots.slack.listeners import MALFORMED, SlackTransport, malformed_ids, register
from bots.slack.manifest import bot_scopes
from bots.slack.oauth_flow import CALLBACKS, TenantOAuthFlow
from bots.slack.settings import SlackSettings
from bots.web import Mount
from core.logs import log
from installs.links import InstallLinkError
from installs.oauth import TenantClaimState
from installs.slack_store import SlackInstallationStore

SLACK = web.AppKey("slack", SlackTransport)


def delivery(runtime: Runtime, settings: SlackSettings) -> SlackDelivery:
    """What a process without Slack's routes (a worker) needs to finish answer messages:
    the workspaces' clients, with their tokens from the installation store."""
    store = SlackInstallationStore(runtime.db, runtime.keyring)
    return SlackDelivery(runtime, WorkspaceClients(store, settings.api_url))


def build(runtime: Runtime, executor: Executor, settings: SlackSettings,
          public_url: str) -> SlackTransport:
    """The Slack transport of this deployment: Bolt with its listeners, OAuth and parts."""
    assert settings.signing_secret is not None and settings.client_secret is not None
    store = SlackInstallationStore(runtime.db, runtime.keyring)
    clients = WorkspaceClients(store, settings.api_url)
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
    bolt = AsyncApp(
        signing_secret=settings.signing_secret.get_secret_value(),
        client=base_client,
        oauth_flow=TenantOAuthFlow(db=runtime.db, keyring=runtime.keyring, audit=runtime.audit,
                                   state_store=states,
                                   client=base_client, settings=oauth),
        # Bolt takes an AsyncAuthorize instance here; its annotation names only functions.
        authorize=authorize,  # type: ignore[arg-type]
        before_authorize=apologise_unless_installed,
        request_verification_enabled=True,
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )
    register(bolt, settings.command)
    answers = SlackAnswers(runtime, clients, executor, settings.command)
    return SlackTransport(bolt=bolt, answers=answers, authorize=authorize)


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
    timestamps = request.headers.getall("X-Slack-Request-Timestamp", [])
    signatures = request.headers.getall("X-Slack-Signature", [])
    if len(timestamps) > 1 or len(signatures) > 1:
        # Which of two signatures a proxy or a parser keeps is not ours to guess.
        log.warning("slack request refused", reason="duplicate signature headers")
        return web.Response(status=401, text="refused: duplicate signature headers")
    timestamp, signature = "".join(timestamps), "".join(signatures)
    if not (timestamp.isascii() and timestamp.isdigit() and signature.isascii()):
        log.warning("slack request refused", reason="unsigned")
        return web.Response(status=401, text="refused: unsigned")
    try:
        bolt_request = AsyncBoltRequest(body=body, query=request.query_string,
                                        headers=dict(request.headers))
        payload = bolt_request.body
        if not isinstance(payload, dict) or not payload:
            raise TypeError(f"a Slack payload is an object, not {type(payload).__name__}")
        if malformed_ids(bolt_request.context):
            log.warning("slack payload with malformed ids refused")
            return web.Response(status=400, text="request body is not a Slack payload")
        transport = request.app[SLACK]
        bolt_request.context["transport"] = transport  # a listener's ``transport`` argument
        response = await transport.bolt.async_dispatch(bolt_request)
    except MALFORMED as exc:
        log.warning("malformed slack payload", error=f"{type(exc).__name__}: {exc}"[:200])
        return web.Response(status=400, text="request body is not a Slack payload")
    if response.status == 404:
        return web.Response(status=200, text="")
    return await to_aiohttp_response(response)


async def _install(request: web.Request) -> web.Response:
    """Bolt's install page, or at once, before Slack, why the install link is dead."""
    flow = request.app[SLACK].bolt.oauth_flow
    assert flow is not None
    try:
        response = await flow.handle_installation(await to_bolt_request(request))
    except InstallLinkError as dead:
        log.info("slack install refused", reason=dead.reason)
        return web.Response(status=400, text=render.install_failed(dead.reason),
                            content_type="text/html")
    return await to_aiohttp_response(response)


async def _callback(request: web.Request) -> web.Response:
    flow = request.app[SLACK].bolt.oauth_flow
    assert flow is not None
    return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))


def add_routes(app: web.Application) -> None:
    """Slack's three endpoints; the Bolt app behind them is set at startup."""
    app.router.add_post("/slack/events", _dispatch)
    app.router.add_get("/slack/install", _install)
    app.router.add_get("/slack/oauth_redirect", _callback)


def mounted(settings: SlackSettings, public_url: str) -> Mount:
    """Startup half of the Slack transport: build it with the live runtime."""

    async def mount(app: web.Application, runtime: Runtime, executor: Executor) -> None:
        transport = build(runtime, executor, settings, public_url)
        app[SLACK] = transport
        runtime.deliverers.append(transport.answers.deliver)
        runtime.posters["slack"] = SlackPoster(runtime, transport.answers.clients)

    return mount
