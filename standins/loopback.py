"""How every stand-in is served: an aiohttp app on 127.0.0.1 at a free port."""

from __future__ import annotations

from typing import Self

from aiohttp import web


class LoopbackServer:
    """Serves ``routes()`` on loopback for as long as ``async with`` lasts."""

    _runner: web.AppRunner | None = None
    _root: str | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, while the server runs."""
        if self._root is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use `async with`")
        return self._root

    def routes(self) -> list[web.RouteDef]:
        """The routes the stand-in answers."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.add_routes(self.routes())
        # A client that hangs up cancels its handler, and so does the shutdown after a
        # second: a reply scripted to be slow never holds up the end of a test.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._root = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner, self._root = None, None
