"""Every error of the HTTP API in one shape: RFC 9457 problem details.

A handler raises ``problem(...)``; the API's middleware also turns aiohttp's own
errors (an unknown route, a wrong method, a body over the limit) into the same shape,
so a client parses one thing whatever went wrong, and never sees a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from core.logs import log

CONTENT_TYPE = "application/problem+json"
TYPES = "https://tenantry.dev/problems/"
"""The base of each problem's ``type``: the title, slugged, names the kind."""


class Problem(web.HTTPException):
    """An HTTP error whose body is a problem document."""

    def __init__(self, status: int, title: str, detail: str, *,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status
        body = {"type": TYPES + title.lower().replace(" ", "-"), "title": title,
                "status": status, "detail": detail}
        super().__init__(headers=dict(headers or {}), text=json.dumps(body),
                         content_type=CONTENT_TYPE)


def problem(status: int, title: str, detail: str, *,
            headers: Mapping[str, str] | None = None) -> Problem:
    """The problem to raise for ``status``; ``detail`` is one line for the caller."""
    return Problem(status, title, detail, headers=headers)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer aiohttp's own HTTP errors and anything unexpected as problem documents."""
    try:
        return await handler(request)
    except Problem:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        raise problem(exc.status, exc.reason, exc.text or exc.reason,
                      headers={k: v for k, v in exc.headers.items()
                               if k.lower() in {"allow", "retry-after"}}) from None
    except Exception:
        log.exception("API request failed", path=request.path)
        raise problem(500, "Internal Server Error",
                      "the request failed; it was logged") from None
