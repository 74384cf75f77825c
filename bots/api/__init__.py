"""The HTTP API, ``/v1``: a tenant's own services reach the agent service with an API key.

The API only resolves a bearer key to its tenant and principal (``auth``); runs,
budgets, memory and audit are the core's, as for the chat platforms. It is a sub-app of
``tenantry serve``'s application, so its middleware (problem documents for every error)
touches none of the other routes.
"""

from __future__ import annotations

from aiohttp import web

from bots.api.auth import LIMIT
from bots.api.limits import RateLimit
from bots.api.problems import problems

RATE_PER_S = 20.0
"""Requests a second a key may make, in each process (``bots.api.limits``)."""
BURST = 40


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


def add_routes(app: web.Application) -> None:
    """Mount the API at ``/v1``."""
    app.add_subapp("/v1", api_app())
