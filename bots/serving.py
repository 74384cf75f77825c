"""aiohttp's runner for the web app, with requests its HTTP parser rejects answered plainly.

A request line or header that aiohttp cannot parse (a header longer than 8190 bytes, a
control character in a value, a malformed ``Content-Length``) never reaches the app or
its middlewares: aiohttp answers 400 itself, with the parser's message as the body,
which quotes the offending header back, and logs a multi-line traceback. Here such a
request is answered ``400 Bad Request`` with the parser's reason only, and logged as
one structured line. Everything else is aiohttp's own behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from core.logs import log

_QUOTED = re.compile(r"[:'\"\n]")


def parse_error_reason(exc: HttpProcessingError) -> str:
    """The parser's reason without what it quotes of the request (it follows a colon)."""
    return _QUOTED.split(exc.message or "", maxsplit=1)[0].strip()[:120] or "malformed"


class _Handler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        reason = parse_error_reason(exc)
        # Scanners speak other protocols to any open port: aiohttp logs those at debug.
        level = log.debug if isinstance(exc, BadHttpMethod) else log.warning
        level("http request rejected by the parser", status=status,
              error=type(exc).__name__, reason=reason, remote=request.remote)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        response = web.Response(status=status, text=f"bad request: {reason}\n")
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=asyncio.get_running_loop(), **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser errors as the module says."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Server(made.request_handler, request_factory=made.request_factory,
                       **self._kwargs)


async def _serve(app: web.Application, host: str, port: int,
                 announce: Callable[[str], None]) -> None:
    runner = Runner(app, handle_signals=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        announce(f"======== Running on http://{host}:{port} ========\n(Press CTRL+C to quit)")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run_app(app: web.Application, *, host: str, port: int,
            print: Callable[[str], None]) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, as ``web.run_app`` does, through ``Runner``."""
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(_serve(app, host, port, print))
