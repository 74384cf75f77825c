"""The Teams transport: the Agents SDK's ``CloudAdapter`` and ``AgentApplication``, on our app.

``POST /api/messages`` is the one route Teams calls. The SDK's JWT check guards that
route alone (its ``jwt_authorization_decorator``, never an app-wide middleware, which
would also demand tokens from Slack and health checks). Behind it, ``messages`` hands
the request to the adapter, which checks the ``serviceUrl`` (``bots.teams.auth``) and
runs the handlers (``bots.teams.listeners``), and answers 400 where the SDK would
answer 500: a body that is not JSON, not an object or not an activity.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_exceptions import NotAppKeyWarning
from microsoft_agents.hosting.aiohttp import CloudAdapter, jwt_authorization_decorator
from microsoft_agents.hosting.core import (
    AgentApplication,
    AgentAuthConfiguration,
    ApplicationOptions,
    Connections,
    MemoryStorage,
    TurnContext,
    TurnState,
)
from pydantic import ValidationError

from bots.executor import Executor
from bots.runtime import Runtime
from bots.teams.answer import TeamsAnswers, TeamsDelivery
from bots.teams.auth import auth_configuration, connections, host_validator, trust_jwks
from bots.teams.digests import TeamsPoster
from bots.teams.listeners import register
from bots.teams.settings import TeamsSettings
from bots.web import Mount
from core.logs import log


@dataclass(frozen=True, slots=True)
class TeamsTransport:
    """The Teams transport of one deployment: the SDK's adapter and application, and ours."""

    config: AgentAuthConfiguration
    adapter: CloudAdapter
    agent: AgentApplication[TurnState]
    answers: TeamsAnswers


TEAMS = web.AppKey("teams", TeamsTransport)
SDK_CONFIGURATION = "agent_configuration"
"""Where the SDK's JWT decorator looks for the bot's identity (a plain string key)."""


async def _turn_failed(context: TurnContext, error: Exception) -> None:
    """The adapter's last resort: logged; the person is not shown the exception's text."""
    log.error("teams turn failed", type=context.activity.type, error=repr(error)[:200],
              exc_info=error)


def _adapter(settings: TeamsSettings) -> tuple[AgentAuthConfiguration, Connections,
                                                CloudAdapter]:
    config = auth_configuration(settings)
    manager = connections(settings, config)
    adapter = CloudAdapter(connection_manager=manager, host_validator=host_validator(settings))
    adapter.on_turn_error = _turn_failed
    return config, manager, adapter


def delivery(runtime: Runtime, settings: TeamsSettings) -> TeamsDelivery:
    """What a process without Teams' route (a worker) needs to post into stored
    conversations: the SDK's adapter, with the bot's outbound token."""
    _config, _manager, adapter = _adapter(settings)
    return TeamsDelivery(runtime, adapter, settings.app_id or "")


def build(runtime: Runtime, executor: Executor, settings: TeamsSettings) -> TeamsTransport:
    """The SDK's adapter and application for this deployment, with Tenantry's handlers."""
    config, manager, adapter = _adapter(settings)
    agent: AgentApplication[TurnState] = AgentApplication(
        ApplicationOptions(bot_app_id=settings.app_id or "", storage=MemoryStorage(),
                           start_typing_timer=False),  # typing is sent while a run works
        connection_manager=manager)
    answers = TeamsAnswers(runtime, executor, adapter, settings.app_id or "")
    register(agent, answers)
    return TeamsTransport(config=config, adapter=adapter, agent=agent, answers=answers)


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


jwt_checked: Callable[[Handler], Handler] = jwt_authorization_decorator
"""The SDK's token check around one handler (untyped in the SDK)."""


async def _activity(request: web.Request) -> web.StreamResponse:
    """An activity from Teams, once its token passed."""
    try:
        body = await request.json()
    except ValueError:
        return _bad_request("body is not JSON")
    if not isinstance(body, dict):
        return _bad_request("body is not an activity")
    conversation = body.get("conversation")
    if not body.get("type") or not isinstance(conversation, dict) or not conversation.get("id"):
        return _bad_request("activity needs a type and a conversation id")
    transport = request.app[TEAMS]
    try:
        response = await transport.adapter.process(request, transport.agent)
    except ValidationError:
        # The adapter validates the body as an ``Activity`` before anything else and lets
        # a failure out as a 500. Validating it here as well cost more per activity than
        # the token's signature check. A turn's own errors go to ``_turn_failed``.
        return _bad_request("body is not an activity")
    return response if response is not None else web.Response(status=202)


messages = jwt_checked(_activity)
"""``POST /api/messages``: the SDK's token check, then the activity."""


def add_routes(app: web.Application) -> None:
    """Add ``POST /api/messages`` (before startup: aiohttp freezes the router)."""
    app.router.add_post("/api/messages", messages)


def mounted(settings: TeamsSettings) -> Mount:
    """The startup half: build the transport once the runtime and executor exist."""

    async def mount(app: web.Application, runtime: Runtime, executor: Executor) -> None:
        # The SDK keeps the token's claims under a string key of the request (as it reads
        # its configuration from one of the app); aiohttp would warn on every request.
        warnings.filterwarnings("ignore", category=NotAppKeyWarning, module="microsoft_agents")
        trust_jwks(settings.jwks_url)
        transport = build(runtime, executor, settings)
        app[TEAMS] = transport
        with warnings.catch_warnings():
            # The SDK's decorator reads a string key; aiohttp asks for typed keys.
            warnings.simplefilter("ignore")
            app[SDK_CONFIGURATION] = transport.config
        runtime.deliverers.append(transport.answers.deliver)
        runtime.posters["teams"] = TeamsPoster(runtime, transport.answers)
        overrides = settings.overrides()
        if overrides:
            log.warning("teams uses local stand-ins for Microsoft's services", **overrides)
        if settings.allow_anonymous:
            log.warning("TEAMS ANONYMOUS MODE: requests are accepted WITHOUT token checks; "
                        "local development only")

    return mount
