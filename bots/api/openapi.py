"""``GET /v1/openapi.json``: the API described as OpenAPI 3.1, from the routes themselves.

The document is built from the same ``Route`` list that registers the handlers
(``bots.api.routes``), and its schemas from the same pydantic models that validate the
bodies, so it cannot drift from what the API does. Pydantic's JSON Schema is 2020-12,
the dialect OpenAPI 3.1 uses; each model's ``$defs`` are hoisted into
``components.schemas``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, TypeAdapter

from bots.api.models import ProblemBody
from bots.api.problems import CONTENT_TYPE as PROBLEM

REF = "#/components/schemas/{model}"
VERSION = "1"
DOCUMENT = web.AppKey("api_openapi_document", dict)

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           409: "Conflict", 413: "Content Too Large", 422: "Unprocessable Content",
           429: "Too Many Requests", 503: "Service Unavailable"}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "the Bearer challenge (RFC 6750)",
                               "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds to wait",
                          "schema": {"type": "integer", "minimum": 1}}},
}
AUTHENTICATED = (401, 403, 429)
"""What any route behind an API key may answer: no usable key, a suspended tenant, over
the key's rate."""


@dataclass(frozen=True)
class Param:
    """One query or header parameter of a route (path parameters come from its path)."""

    name: str
    where: Literal["query", "header"]
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Route:
    """One operation: registered on the app and described in the document."""

    method: Literal["GET", "POST", "DELETE"]
    path: str
    """Below ``/v1``, with ``{name}`` path parameters (the same syntax in both)."""
    handler: Handler
    status: int
    answer: Any
    """The success body's type (a model, or ``list[Model]``); for a stream of server-sent
    events, the model of one event."""
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    """Problem statuses besides ``AUTHENTICATED`` (and 413/422 where there is a body)."""
    public: bool = False
    media: str = "application/json"
    tags: tuple[str, ...] = field(default=())
    links: tuple[tuple[str, str, str], ...] = ()
    """``(operation, parameter, field)``: the success body's ``field`` is ``parameter`` of
    that operation (OpenAPI links, which stateful clients and fuzzers follow)."""


class _Schemas:
    """``components.schemas``, filled as each route's types are described."""

    def __init__(self) -> None:
        self.found: dict[str, dict[str, Any]] = {}

    def add(self, name: str, schema: dict[str, Any]) -> None:
        if self.found.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both named {name}")

    def of(self, kind: Any, mode: Literal["validation", "serialization"]) -> dict[str, Any]:
        """A reference to ``kind``'s schema (a model), or its schema inline."""
        schema = dict(TypeAdapter(kind).json_schema(ref_template=REF, mode=mode))
        for name, inner in schema.pop("$defs", {}).items():
            self.add(name, inner)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            self.add(kind.__name__, schema)
            return {"$ref": REF.format(model=kind.__name__)}
        return schema


def _summary(handler: Handler) -> str:
    return (inspect.getdoc(handler) or "").split("\n\n")[0].replace("\n", " ").replace("``", "")


def _parameters(route: Route) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in route.path.split("/") if part.startswith("{")]
    found: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1}} for name in names]
    found += [{"name": p.name, "in": p.where, "required": p.required,
               "description": p.description, "schema": p.schema} for p in route.params]
    return found


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    success: dict[str, Any] = {"description": HTTPStatus(route.status).phrase,
               "content": {route.media: {"schema": schemas.of(route.answer, "serialization")}}}
    if route.links:
        success["links"] = {operation: {"operationId": operation,
                                        "parameters": {parameter: f"$response.body#/{name}"}}
                            for operation, parameter, name in route.links}
    errors = set(route.errors) | (set() if route.public else set(AUTHENTICATED))
    if route.body is not None:
        errors |= {413, 422}
    problem = {"schema": {"$ref": REF.format(model=ProblemBody.__name__)}}
    responses: dict[str, Any] = {str(route.status): success}
    for status in sorted(errors):
        responses[str(status)] = {"description": _TITLES[status],
                                  "content": {PROBLEM: problem}}
        if status in _HEADERS:
            responses[str(status)]["headers"] = _HEADERS[status]
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__, "summary": _summary(route.handler),
        "parameters": _parameters(route), "responses": responses,
    }
    if route.tags:
        operation["tags"] = list(route.tags)
    if route.public:
        operation["security"] = []
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schemas.of(route.body, "validation")}}}
    return operation


def document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``, mounted at ``/v1``."""
    schemas = _Schemas()
    schemas.of(ProblemBody, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault("/v1" + route.path, {})[route.method.lower()] = _operation(
            route, schemas)
    operations = {route.handler.__name__ for route in routes}
    for route in routes:
        for operation, _, _ in route.links:
            if operation not in operations:
                raise ValueError(f"{route.path} links to no operation {operation}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tenantry API", "version": VERSION,
                 "description": "A tenant's own services reach the agent service with "
                                "an API key; every error is an RFC 9457 problem."},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.found.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a Tenantry API key"}},
        },
        "security": [{"bearer": []}],
    }


async def serve_document(request: web.Request) -> web.Response:
    """``GET /v1/openapi.json``: this document; no key needed."""
    return web.json_response(request.app[DOCUMENT])
