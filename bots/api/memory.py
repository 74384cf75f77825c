"""``/v1/memory``: a tenant's services put documents into its memory, search it, delete.

It is the memory ``tenantry memory`` manages and the ``knowledge.search`` tool reads,
through the same ``Knowledge``, so ingestion and deletion are audited as the key's
principal. Any valid key of the tenant may use it, as an operator may from the command
line; a document is limited by the API's body size. Every call is confined to the key's
own tenant by the context built from the key.
"""

from __future__ import annotations

from aiohttp import web

from bots.api.auth import authenticate
from bots.api.bodies import parse, read_body
from bots.api.models import (
    DocumentDeleted,
    DocumentRequest,
    DocumentStored,
    MatchView,
    SearchRequest,
)
from bots.api.problems import problem
from bots.runtime import Runtime
from bots.web import RUNTIME
from core.api_keys import ApiKey
from core.builder import build_context
from core.context import TenantContext
from core.errors import InvalidInput, RunRefused


async def _context(runtime: Runtime, key: ApiKey) -> TenantContext:
    try:
        grant = await build_context(runtime.db, tenant_id=key.tenant_id,
                                    principal_id=key.principal_id, principal_kind="service",
                                    initiator="user")
    except RunRefused as refused:
        raise problem(403, "Forbidden", f"the request was refused: {refused}") from None
    return grant.ctx


async def add_document(request: web.Request) -> web.Response:
    """``POST /v1/memory``: 201 with the chunks stored."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    sent = parse(DocumentRequest, await read_body(request))
    ctx = await _context(runtime, key)
    try:
        stored = await runtime.knowledge.add(ctx, sent.source, sent.text)
    except InvalidInput as exc:
        raise problem(422, "Unprocessable Content", str(exc)) from None
    return web.json_response(DocumentStored(source=sent.source, chunks=stored).model_dump(),
                             status=201)


async def search_memory(request: web.Request) -> web.Response:
    """``POST /v1/memory/search``: the best chunks first."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    sent = parse(SearchRequest, await read_body(request))
    ctx = await _context(runtime, key)
    try:
        found = await runtime.knowledge.search(ctx, sent.query, sent.top)
    except InvalidInput as exc:
        raise problem(422, "Unprocessable Content", str(exc)) from None
    return web.json_response([MatchView(source=m.source, chunk=m.chunk, score=m.score,
                                        text=m.text).model_dump() for m in found])


async def delete_document(request: web.Request) -> web.Response:
    """``DELETE /v1/memory/{source}``: every chunk of it, for good; 404 if none."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    source = request.match_info["source"]
    if len(source) > 200 or "\x00" in source:  # never a stored name
        raise problem(404, "Not Found", "no such document")
    ctx = await _context(runtime, key)
    try:
        removed = await runtime.knowledge.delete(ctx, source)
    except InvalidInput:  # a name no document can have, as "/" or blank ones
        raise problem(404, "Not Found", "no such document") from None
    if not removed:
        raise problem(404, "Not Found", "no such document")
    return web.json_response(DocumentDeleted(source=source, chunks=removed).model_dump())
