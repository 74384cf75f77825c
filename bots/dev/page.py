"""The playground's page and the small JSON API behind it, served from the playground.

The page (``static/index.html``: plain HTML and a little JavaScript, no build step)
polls ``/api/messages`` to show a conversation as its answer streams. Every write goes
through the ``Playground``, which sends it to the real server signed as Slack signs it;
``tenantry dev say`` uses the same API from a terminal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib.resources import files
from typing import Any

from aiohttp import web

from bots.dev.playground import KINDS, Kind, Playground
from bots.dev.shown import block_texts, buttons_of
from core.errors import InvalidInput, NotFound

PLAYGROUND = web.AppKey("playground", Playground)
_KINDS: dict[str, Kind] = {kind: kind for kind in KINDS}
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _page() -> str:
    return files("bots.dev").joinpath("static/index.html").read_text(encoding="utf-8")


@web.middleware
async def _plain_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """A mistake in a request is a 400 with one sentence, never a traceback."""
    try:
        return await handler(request)
    except (InvalidInput, NotFound) as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise InvalidInput(f"{name!r} must be a non-empty string")
    return value


async def index(request: web.Request) -> web.Response:
    """The page."""
    return web.Response(text=_page(), content_type="text/html")


async def state(request: web.Request) -> web.Response:
    """What the page offers: workspaces and their conversations, the model, the tools."""
    p = request.app[PLAYGROUND]
    return web.json_response({
        "tenant": p.tenant_id, "model": p.model, "capabilities": p.capabilities,
        "kinds": list(KINDS), "busy": p.busy,
        "workspaces": [{"team_id": team, "channels": [{"id": c, "label": label} for c, label
                                                      in p.channels(team).items()]}
                       for team in p.workspaces],
    })


async def messages(request: web.Request) -> web.Response:
    """A conversation (or one thread of it, with ``thread``), oldest first."""
    p = request.app[PLAYGROUND]
    team, channel = request.query.get("team", ""), request.query.get("channel", "")
    thread = request.query.get("thread")
    shown = p.thread(team, channel, thread) if thread else p.messages(team, channel)
    return web.json_response({"messages": [m.as_json() for m in shown], "busy": p.busy})


async def send(request: web.Request) -> web.Response:
    """Write a message, a mention or ``/ask``; with ``"wait": true``, answer once the
    runs it started have finished, with its thread."""
    p = request.app[PLAYGROUND]
    body = await _body(request)
    kind = _KINDS.get(_field(body, "kind"))
    if kind is None:
        raise InvalidInput(f"'kind' must be one of: {', '.join(KINDS)}")
    team, channel = _field(body, "team"), _field(body, "channel")
    thread_ts = _field(body, "thread_ts", required=False) or None
    if not body.get("wait"):
        return web.json_response({"ts": await p.send(team, channel, kind, _field(body, "text"),
                                                     thread_ts)})
    root, thread = await p.ask(team, channel, kind, _field(body, "text"), thread_ts)
    return web.json_response({"thread_ts": root, "thread": [m.as_json() for m in thread]})


async def press(request: web.Request) -> web.Response:
    """Press a button the page showed (Resume on a halt, Verify in the App Home)."""
    p = request.app[PLAYGROUND]
    body = await _body(request)
    await p.press(_field(body, "team"), _field(body, "channel"),
                  _field(body, "message_ts", required=False), _field(body, "action_id"),
                  _field(body, "value", required=False))
    return web.json_response({"pressed": True})


async def home(request: web.Request) -> web.Response:
    """Open the App Home tab (POST) or read the view last published (GET)."""
    p = request.app[PLAYGROUND]
    team = request.query.get("team", "")
    p.workspace(team)
    view = await p.open_home(team) if request.method == "POST" else p.home_view(team)
    blocks = view.get("blocks", [])
    return web.json_response({"lines": block_texts(blocks),
                              "buttons": [asdict(b) for b in buttons_of(blocks)]})


def page_app(playground: Playground) -> web.Application:
    """The page's aiohttp app, over a running playground."""
    app = web.Application(middlewares=[_plain_errors], client_max_size=64 * 1024)
    app[PLAYGROUND] = playground
    app.add_routes([
        web.get("/", index), web.get("/api/state", state), web.get("/api/messages", messages),
        web.post("/api/send", send), web.post("/api/press", press),
        web.get("/api/home", home), web.post("/api/home", home),
    ])
    return app


@asynccontextmanager
async def serve_page(playground: Playground, host: str, port: int) -> AsyncIterator[str]:
    """Serve the page on ``host:port`` (0: a free port); yields its URL.

    Raises:
        OSError: the port is taken or the address cannot be used.
    """
    runner = web.AppRunner(page_app(playground), access_log=None, handler_cancellation=True,
                           shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0]
        yield f"http://{host}:{bound[1]}/"
    finally:
        await runner.cleanup()
