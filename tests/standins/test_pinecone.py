"""The Pinecone fake against the 2026-04 data-plane spec, driven through the real SDK."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from pinecone import ApiError, AsyncIndex, UnauthorizedError

from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.errors import ConfigurationError
from core.vectors.base import VectorItem
from core.vectors.pinecone_store import (
    DATA_PLANE_API_VERSION,
    PineconeVectorAdmin,
    PineconeVectorStore,
)
from standins.pinecone import API_VERSION, ROUTES, Exchange, PineconeDataPlane

SPEC = "schemas/pinecone-db-data-2026-04.oas.yaml"
DIM = 8


def ctx_for(tenant_id: str) -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id="u1", principal_kind="user", scope=(),
        ceilings=RunCeilings(1, 1, 1, 1), remaining=MonthlyRemaining(1, 1, 1), initiator="user",
    )


def vector(*head: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    values = np.zeros(DIM, dtype=np.float32)
    values[: len(head)] = head
    return values


@pytest.fixture
def spec(shared_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((shared_dir / SPEC).read_text())
    return loaded


@pytest.fixture
async def fake() -> AsyncIterator[PineconeDataPlane]:
    async with PineconeDataPlane(api_key="pk-" + secrets.token_hex(8), dimension=DIM) as server:
        yield server


@pytest.fixture
async def store(fake: PineconeDataPlane) -> AsyncIterator[PineconeVectorStore]:
    async with await PineconeVectorStore.connect(api_key=fake.api_key, host=fake.host) as opened:
        yield opened


def _validate(spec: dict[str, Any], schema: dict[str, Any], instance: Any, what: str) -> None:
    root = {**schema, "components": spec["components"]}
    errors = list(jsonschema.Draft4Validator(root).iter_errors(instance))
    assert not errors, f"{what}: {[e.message for e in errors]}"


def _check_against_spec(spec: dict[str, Any], exchange: Exchange) -> None:
    operation = spec["paths"][exchange.route][exchange.method.lower()]
    where = f"{exchange.method} {exchange.route}"
    allowed = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    assert set(exchange.query) <= allowed, f"{where}: query {sorted(exchange.query)}"
    if exchange.body is not None:
        body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
        _validate(spec, body_schema, exchange.body, f"{where} request")
    responses = operation["responses"]
    status = str(exchange.status)
    declared = responses.get(status) or responses[f"{status[0]}XX"]
    _validate(spec, declared["content"]["application/json"]["schema"], exchange.response,
              f"{where} {status} response")


def test_every_route_of_the_fake_is_in_the_spec(spec: dict[str, Any]) -> None:
    assert str(spec["info"]["version"]) == API_VERSION == DATA_PLANE_API_VERSION
    for method, path in ROUTES:
        assert method.lower() in spec["paths"].get(path, {}), f"{method} {path} not in the spec"


async def test_what_the_sdk_and_the_fake_exchange_matches_the_spec(
    spec: dict[str, Any], fake: PineconeDataPlane, store: PineconeVectorStore
) -> None:
    alpha = ctx_for("alpha")
    items = [VectorItem("a.md", i, f"text {i}", vector(1, i), {"lang": "en"}) for i in range(3)]
    await store.upsert(alpha, items)
    await store.upsert(ctx_for("beta"), [VectorItem("b.md", 0, "beta", vector(0, 1))])
    await store.query(alpha, vector(1), 2)
    index: AsyncIndex = store.index
    fetched = await index.fetch(ids=["a.md#0", "a.md#9"], namespace="tenant-alpha")
    assert set(fetched.vectors) == {"a.md#0"}
    stats = await index.describe_index_stats()
    assert stats.total_vector_count == 4 and stats.namespaces["tenant-alpha"].vector_count == 3
    listed = await index.list_namespaces_paginated()
    assert [n.name for n in listed.namespaces] == ["tenant-alpha", "tenant-beta"]
    assert await store.delete_source(alpha, "a.md") == 3
    await index.delete(delete_all=True, namespace="tenant-beta")
    await PineconeVectorAdmin(store).purge("alpha")
    await PineconeVectorAdmin(store).purge("alpha")
    assert {(e.method, e.route) for e in fake.exchanges} == set(ROUTES)
    assert any(e.status == 404 for e in fake.exchanges)
    for exchange in fake.exchanges:
        _check_against_spec(spec, exchange)


async def test_list_pages_through_many_ids(
    fake: PineconeDataPlane, store: PineconeVectorStore
) -> None:
    ctx = ctx_for("alpha")
    await store.upsert(ctx, [VectorItem("big", i, "x", vector(1, i)) for i in range(250)])
    assert await store.delete_source(ctx, "big") == 250
    assert sum(e.route == "/vectors/list" for e in fake.exchanges) == 3
    assert fake.namespaces["tenant-alpha"] == {}


async def test_a_wrong_api_key_is_a_configuration_error(fake: PineconeDataPlane) -> None:
    async with await PineconeVectorStore.connect(api_key="pk-wrong", host=fake.host) as store:
        with pytest.raises(ConfigurationError, match="refused the API key") as caught:
            await store.query(ctx_for("alpha"), vector(1), 1)
    assert isinstance(caught.value.__cause__, UnauthorizedError)
    assert "pk-wrong" not in str(caught.value)


async def test_the_fake_refuses_another_api_version_and_the_default_namespace(
    fake: PineconeDataPlane,
) -> None:
    async with AsyncIndex(host=fake.host, api_key=fake.api_key) as sdk_default:
        with pytest.raises(ApiError, match="unsupported API version"):
            await sdk_default.describe_index_stats()
    async with AsyncIndex(
        host=fake.host, api_key=fake.api_key,
        additional_headers={"X-Pinecone-Api-Version": API_VERSION},
    ) as pinned:
        with pytest.raises(ApiError, match="default namespace is refused"):
            await pinned.query(top_k=1, vector=vector(1).tolist())
    assert [e.status for e in fake.exchanges] == [400, 400]
