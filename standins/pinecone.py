"""A loopback fake of the Pinecone data plane (one dense, cosine index) for tests.

The real ``pinecone`` SDK talks to it through an index host of
``http://127.0.0.1:<port>``, so request building, retries and response parsing run
unmodified. Routes and shapes follow the data-plane OpenAPI spec, API version 2026-04
(``../shared/schemas/pinecone-db-data-2026-04.oas.yaml``); every exchange is recorded
so tests can validate both directions against that spec.

It is stricter than the service in one way on purpose: a request that names no
namespace (the default one) is refused, since Tenantry must never use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from standins.loopback import LoopbackServer

API_VERSION: Final = "2026-04"
DEFAULT_NAMESPACE: Final = "__default__"
_GRPC_CODES: Final = {400: 3, 401: 16, 404: 5}
Record = dict[str, Any]
_Handler = Callable[["PineconeDataPlane", web.Request, Any], Any]


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer, for checking against the spec."""

    method: str
    route: str
    query: Mapping[str, list[str]]
    body: Any
    status: int
    response: Any


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.hypot(*a) * math.hypot(*b)
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def _compare(op: str, actual: Any, expected: Any) -> bool:
    comparisons: dict[str, Callable[[], bool]] = {
        "$eq": lambda: actual == expected,
        "$ne": lambda: actual != expected,
        "$in": lambda: actual in expected,
        "$nin": lambda: actual not in expected,
        "$gt": lambda: actual is not None and actual > expected,
        "$gte": lambda: actual is not None and actual >= expected,
        "$lt": lambda: actual is not None and actual < expected,
        "$lte": lambda: actual is not None and actual <= expected,
        "$exists": lambda: (actual is not None) == bool(expected),
    }
    if op not in comparisons:
        raise _Refused(400, f"unsupported filter operator {op!r}")
    if isinstance(actual, list) and op in ("$eq", "$in"):
        return any(_compare(op, item, expected) for item in actual)
    return comparisons[op]()


def matches_filter(metadata: Mapping[str, Any], expression: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` satisfies a Pinecone metadata filter expression."""
    for key, condition in expression.items():
        if key == "$and":
            if not all(matches_filter(metadata, part) for part in condition):
                return False
        elif key == "$or":
            if not any(matches_filter(metadata, part) for part in condition):
                return False
        elif isinstance(condition, dict):
            if not all(_compare(op, metadata.get(key), value) for op, value in condition.items()):
                return False
        elif not _compare("$eq", metadata.get(key), condition):
            return False
    return True


class PineconeDataPlane(LoopbackServer):
    """An in-process Pinecone index host on 127.0.0.1; use as an async context manager."""

    def __init__(self, *, api_key: str, dimension: int) -> None:
        """Prepare the fake without binding a port.

        Args:
            api_key: The only ``Api-Key`` accepted; anything else gets 401.
            dimension: The index dimension every vector must have.
        """
        self.api_key = api_key
        self.dimension = dimension
        self.namespaces: dict[str, dict[str, Record]] = {}
        self.exchanges: list[Exchange] = []

    @property
    def host(self) -> str:
        """The ``http://127.0.0.1:<port>`` index host to hand the SDK."""
        return self.base_url

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route(method, path, self._serving(path, handler))
            for (method, path), handler in ROUTES.items()
        ]

    def _serving(
        self, route: str, handler: _Handler
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a route: check the headers, parse the body, record the exchange."""

        async def serve(request: web.Request) -> web.Response:
            body: Any = None
            try:
                if request.headers.get("Api-Key") != self.api_key:
                    raise _Refused(401, "Invalid API Key")
                version = request.headers.get("X-Pinecone-Api-Version")
                if version != API_VERSION:
                    raise _Refused(400, f"unsupported API version {version!r}")
                if request.can_read_body:
                    try:
                        body = json.loads(await request.read())
                    except ValueError as exc:
                        raise _Refused(400, "request body is not JSON") from exc
                if request.method == "POST" and not isinstance(body, dict):
                    raise _Refused(400, "request body must be a JSON object")
                status, answer = 200, handler(self, request, body)
            except _Refused as refusal:
                status = refusal.status
                answer = {"code": _GRPC_CODES.get(status, 2), "message": str(refusal),
                          "details": []}
            self.exchanges.append(Exchange(
                method=request.method, route=route,
                query={key: request.query.getall(key) for key in request.query},
                body=body, status=status, response=answer,
            ))
            return web.json_response(answer, status=status)

        return serve

    def _records(self, name: Any, *, create: bool = False) -> dict[str, Record]:
        if not isinstance(name, str) or name in ("", DEFAULT_NAMESPACE):
            raise _Refused(400, "tenantry fake: the default namespace is refused")
        if create:
            return self.namespaces.setdefault(name, {})
        return self.namespaces.get(name, {})

    def _upsert(self, request: web.Request, body: Any) -> Any:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not 1 <= len(vectors) <= 1000:
            raise _Refused(400, "vectors must hold 1 to 1000 records")
        records = self._records(body.get("namespace"), create=True)
        for vector in vectors:
            if not isinstance(vector.get("id"), str) or not 1 <= len(vector["id"]) <= 512:
                raise _Refused(400, "a vector id must be 1 to 512 characters")
            if len(vector.get("values", [])) != self.dimension:
                raise _Refused(400, f"vector dimension must be {self.dimension}")
        for vector in vectors:
            records[vector["id"]] = {
                "id": vector["id"], "values": [float(v) for v in vector["values"]],
                "metadata": dict(vector.get("metadata") or {}),
            }
        return {"upsertedCount": len(vectors)}

    def _query(self, request: web.Request, body: Any) -> Any:
        top_k, vector = body.get("topK"), body.get("vector")
        if not isinstance(top_k, int) or not 1 <= top_k <= 10_000:
            raise _Refused(400, "topK must be from 1 to 10000")
        if not isinstance(vector, list) or len(vector) != self.dimension:
            raise _Refused(400, f"vector dimension must be {self.dimension}")
        name = body.get("namespace")
        records = self._records(name).values()
        expression = body.get("filter") or {}
        scored = sorted(
            ((_cosine(vector, r["values"]), r) for r in records
             if matches_filter(r["metadata"], expression)),
            key=lambda pair: -pair[0],
        )[:top_k]
        matches = []
        for score, record in scored:
            match: Record = {"id": record["id"], "score": score, "values": []}
            if body.get("includeValues"):
                match["values"] = record["values"]
            if body.get("includeMetadata"):
                match["metadata"] = record["metadata"]
            matches.append(match)
        return {"matches": matches, "namespace": name, "usage": {"readUnits": 1}}

    def _fetch(self, request: web.Request, body: Any) -> Any:
        name = request.query.get("namespace")
        records = self._records(name)
        found = {i: records[i] for i in request.query.getall("ids", []) if i in records}
        return {"vectors": found, "namespace": name, "usage": {"readUnits": 1}}

    def _delete(self, request: web.Request, body: Any) -> Any:
        selectors = [k for k in ("ids", "filter", "deleteAll") if body.get(k)]
        if len(selectors) != 1:
            raise _Refused(400, "give exactly one of ids, filter and deleteAll")
        records = self._records(body.get("namespace"))
        if body.get("deleteAll"):
            records.clear()
        elif body.get("ids"):
            for record_id in body["ids"]:
                records.pop(record_id, None)
        else:
            for record_id in [i for i, r in records.items()
                              if matches_filter(r["metadata"], body["filter"])]:
                del records[record_id]
        return {}

    def _list(self, request: web.Request, body: Any) -> Any:
        name = request.query.get("namespace")
        prefix = request.query.get("prefix", "")
        token = request.query.get("paginationToken")
        try:
            limit = int(request.query.get("limit", "100"))
            start = int(token) if token else 0
        except ValueError as exc:
            raise _Refused(400, "limit and paginationToken must be what this fake issued") from exc
        ids = sorted(i for i in self._records(name) if i.startswith(prefix))
        page: Record = {
            "vectors": [{"id": i} for i in ids[start : start + limit]],
            "namespace": name, "usage": {"readUnits": 1},
        }
        if start + limit < len(ids):
            page["pagination"] = {"next": str(start + limit)}
        return page

    def _list_namespaces(self, request: web.Request, body: Any) -> Any:
        prefix = request.query.get("prefix", "")
        names = sorted(n for n in self.namespaces if n.startswith(prefix))
        return {
            "namespaces": [{"name": n, "record_count": len(self.namespaces[n])} for n in names],
            "total_count": len(names),
        }

    def _delete_namespace(self, request: web.Request, body: Any) -> Any:
        name = request.match_info["namespace"]
        self._records(name)
        if self.namespaces.pop(name, None) is None:
            raise _Refused(404, f"namespace {name!r} not found")
        return {}

    def _stats(self, request: web.Request, body: Any) -> Any:
        counts = {n: {"vectorCount": len(r)} for n, r in self.namespaces.items() if r}
        return {
            "namespaces": counts, "dimension": self.dimension, "indexFullness": 0.0,
            "totalVectorCount": sum(c["vectorCount"] for c in counts.values()),
            "metric": "cosine", "vectorType": "dense",
        }


ROUTES: Final[Mapping[tuple[str, str], _Handler]] = {
    ("POST", "/vectors/upsert"): PineconeDataPlane._upsert,
    ("POST", "/query"): PineconeDataPlane._query,
    ("GET", "/vectors/fetch"): PineconeDataPlane._fetch,
    ("POST", "/vectors/delete"): PineconeDataPlane._delete,
    ("GET", "/vectors/list"): PineconeDataPlane._list,
    ("GET", "/namespaces"): PineconeDataPlane._list_namespaces,
    ("DELETE", "/namespaces/{namespace}"): PineconeDataPlane._delete_namespace,
    ("POST", "/describe_index_stats"): PineconeDataPlane._stats,
}
"""Every route of the fake and the method that answers it."""
