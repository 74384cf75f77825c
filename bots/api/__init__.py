"""The HTTP API, ``/v1``: a tenant's own services reach the agent service with an API key.

The API only resolves a bearer key to its tenant and principal (``auth``); runs,
budgets, memory and audit are the core's, as for the chat platforms. It is a sub-app of
``tenantry serve``'s application, so its middleware (problem documents for every error)
touches none of the other routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from bots.api.auth import LIMIT
from bots.api.idempotency import forget_expired
from bots.api.limits import RateLimit
from bots.api.problems import problems
from bots.web import RUNTIME
from core.logs import log

RATE_PER_S = 20.0
"""Requests a second a key may make, in each process (``bots.api.limits``)."""
BURST = 40
FORGET_EVERY_S = 3600.0
"""How often each process deletes expired ``Idempotency-Key`` rows."""


def api_app(limit: RateLimit | None = None) -> web.Application:
    """The ``/v1`` sub-application."""
    from bots.api.openapi import DOCUMENT, document
    from bots.api.routes import ROUTES

    app = web.Application(middlewares=[problems])
    app[LIMIT] = limit or RateLimit(RATE_PER_S, BURST)
    app[DOCUMENT] = document(ROUTES)
    for route in ROUTES:
        if route.method == "GET":  # with HEAD, as aiohttp's add_get does
            app.router.add_get(route.path, route.handler)
        else:
            app.router.add_route(route.method, route.path, route.handler)
    return app


async def forgetting(app: web.Application) -> AsyncIterator[None]:
    """Delete expired ``Idempotency-Key`` rows every ``FORGET_EVERY_S`` while the app
    serves (a failure is logged and tried again next time). The first pass waits one
    interval: the runtime is the app's lifespan's, opened after this is registered."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(FORGET_EVERY_S)
            try:
                gone = await app[RUNTIME].db.run(forget_expired, now=datetime.now(UTC))
                if gone:
                    log.info("expired idempotency keys deleted", count=gone)
            except Exception:
                log.exception("deleting expired idempotency keys failed")

    task = asyncio.create_task(loop(), name="tenantry-api-idempotency")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def add_routes(app: web.Application) -> None:
    """Mount the API at ``/v1``, with its housekeeping."""
    app.add_subapp("/v1", api_app())
    app.cleanup_ctx.append(forgetting)
