"""The MCP server's ASGI application, and uvicorn serving it beside the aiohttp app.

The application is assembled from the SDK's own parts, as ``FastMCP`` assembles
its own: the bearer-token middleware with our verifier, ``/mcp`` behind
``RequireAuthMiddleware`` (401 with ``WWW-Authenticate`` naming the metadata), the
RFC 9728 protected-resource metadata under ``/.well-known/oauth-protected-resource``,
and the Streamable HTTP session manager. It is stateless: every request carries its
token and builds its context, so any process of a deployment answers any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, BaseUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bots.executor import Executor
from bots.mcp.auth import ApiKeyVerifier, refusal
from bots.mcp.server import create_server
from bots.mcp.settings import McpSettings
from bots.runtime import Runtime
from core.logs import log

PATH = "/mcp"


class _Backend(BearerAuthBackend):
    """The SDK's bearer backend, on ``/mcp`` only: the protected-resource metadata is
    public, whatever a client sends with it."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if conn.url.path != PATH:
            return None
        found: tuple[AuthCredentials, BaseUser] | None = await super().authenticate(conn)
        return found


def create_mcp_app(runtime: Runtime, public_url: str,
                   sessions: StreamableHTTPSessionManager) -> Starlette:
    """The MCP ASGI application for ``runtime``, naming itself ``public_url + /mcp``.

    ``sessions`` must be running (``sessions.run()``) while the application serves: the
    task serving it holds it, not an ASGI lifespan, whose task uvicorn would report
    with a traceback when a shutdown cancels every task at once (aiohttp's on SIGTERM).
    """
    resource = AnyHttpUrl(public_url.rstrip("/") + PATH)
    metadata_url = build_resource_metadata_url(resource)

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        await sessions.handle_request(scope, receive, send)

    routes = [
        Route(PATH, endpoint=RequireAuthMiddleware(handle, [], metadata_url)),
        # API keys are issued by the deployment's operators (``tenantry api-keys``): the
        # deployment is its own authorisation server.
        *create_protected_resource_routes(resource, [AnyHttpUrl(public_url)],
                                          resource_name="Tenantry"),
    ]
    verifier = ApiKeyVerifier(runtime.db, runtime.audit)
    middleware = [Middleware(AuthenticationMiddleware, backend=_Backend(verifier),
                             on_error=refusal(str(metadata_url))),
                  Middleware(AuthContextMiddleware)]
    return Starlette(routes=routes, middleware=middleware)


class _Embedded(uvicorn.Server):
    """uvicorn inside a process that owns its signals: aiohttp's runner handles them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class McpServer:
    """uvicorn serving the MCP app, held by the web app's lifespan for as long as it runs.

    Attributes:
        url: Where clients connect (``http://host:port/mcp``), once started.
    """

    def __init__(self, runtime: Runtime, executor: Executor, settings: McpSettings) -> None:
        self.runtime = runtime
        self.executor = executor
        self.settings = settings
        self.url = ""
        self._server: _Embedded | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> McpServer:
        settings = self.settings
        # The public URL names the resource; with port 0 it is known only once bound.
        sock = _bind(settings.host, settings.port)
        host, port = sock.getsockname()[:2]
        listening = f"http://{host}:{port}"
        sessions = StreamableHTTPSessionManager(app=create_server(self.runtime, self.executor),
                                                stateless=True)
        app = create_mcp_app(self.runtime, settings.public_url or listening, sessions)
        server = self._server = _Embedded(uvicorn.Config(app, log_config=None,
                                                         lifespan="off", access_log=False))

        async def serve() -> None:
            async with sessions.run():
                await server.serve(sockets=[sock])

        self._task = asyncio.create_task(serve(), name="tenantry-mcp")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the MCP server stopped as it started")
            await asyncio.sleep(0.01)
        self.url = f"{listening}{PATH}"
        log.info("mcp enabled", url=self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await asyncio.gather(self._task, return_exceptions=True)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def mcp_served(runtime: Runtime, executor: Executor,
                     settings: McpSettings | None) -> AsyncIterator[McpServer | None]:
    """The MCP server for as long as the context lasts, if ``settings`` enable it."""
    if settings is None or not settings.enabled:
        yield None
        return
    async with McpServer(runtime, executor, settings) as server:
        yield server
