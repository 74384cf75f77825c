"""Reading a request body into its model: a size limit first, then one clear error."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bots.api.problems import problem

BODY_MAX = 64 * 1024
"""Bytes a request body may have: a prompt at its longest, with room to spare."""

M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refused with 413 past ``BODY_MAX`` (declared or sent)."""
    if (request.content_length or 0) > BODY_MAX:
        raise problem(413, "Content Too Large", f"request bodies are limited to {BODY_MAX} bytes")
    body = await request.content.read(BODY_MAX + 1)
    if len(body) > BODY_MAX:
        raise problem(413, "Content Too Large", f"request bodies are limited to {BODY_MAX} bytes")
    return body


def parse(model: type[M], body: bytes) -> M:
    """``body`` as ``model``; 422 naming the first thing wrong."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise problem(422, "Unprocessable Content", f"{where}: {first['msg']}") from None
