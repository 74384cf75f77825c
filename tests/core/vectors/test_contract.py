"""One contract for every VectorStore: the embedded store (SQLite, PostgreSQL) and Pinecone.

Pinecone runs through the real SDK against the loopback fake of its data plane.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.db.engine import Database
from core.errors import InvalidInput
from core.vectors.base import (
    BadPartition,
    NoTenant,
    PartitionResolver,
    TenantPartitions,
    VectorAdmin,
    VectorItem,
    VectorStore,
)
from core.vectors.embedded import EmbeddedVectorAdmin, EmbeddedVectorStore
from core.vectors.embeddings import HashingEmbedder
from core.vectors.pinecone_store import PineconeVectorAdmin, PineconeVectorStore
from core.vectors.tables import memory_chunks
from standins.pinecone import PineconeDataPlane
from tests.support.databases import PostgresTemplates, SqliteTemplates, fetch_value

EMBEDDER = HashingEmbedder(dim=256)
MakeStore = Callable[[PartitionResolver | None], VectorStore]


def ctx_for(tenant_id: str, principal_id: str = "u1") -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id=principal_id, principal_kind="user", scope=(),
        ceilings=RunCeilings(1, 1, 1, 1), remaining=MonthlyRemaining(1, 1, 1), initiator="user",
    )


def tenantless() -> TenantContext:
    """A context whose tenant went missing after construction (a bug, or a forgery)."""
    ctx = ctx_for("ghost")
    object.__setattr__(ctx, "tenant_id", "")
    return ctx


async def items(source: str, *texts: str, **metadata: Any) -> list[VectorItem]:
    vectors = await EMBEDDER.embed(list(texts))
    return [
        VectorItem(source=source, chunk=i, text=t, vector=vectors[i], metadata=metadata)
        for i, t in enumerate(texts)
    ]


async def ask(store: VectorStore, ctx: TenantContext, text: str, top_k: int = 10) -> list[str]:
    vector = (await EMBEDDER.embed([text]))[0]
    return [m.text for m in await store.query(ctx, vector, top_k)]


@dataclass
class Backend:
    """Builds stores on one backend and counts what it holds, behind the store's back."""

    make: MakeStore
    stored: Callable[[], Awaitable[int]]
    admin: VectorAdmin


@pytest.fixture(params=[
    "embedded-sqlite",
    pytest.param("embedded-postgresql", marks=pytest.mark.postgres),
    "pinecone",
])
async def backend(
    request: pytest.FixtureRequest,
    sqlite_templates: SqliteTemplates,
    postgres_templates: PostgresTemplates | None,
) -> AsyncIterator[Backend]:
    if request.param == "pinecone":
        api_key = "pk-test-" + secrets.token_hex(8)
        async with (
            PineconeDataPlane(api_key=api_key, dimension=EMBEDDER.dim) as fake,
            await PineconeVectorStore.connect(api_key=api_key, host=fake.host) as store,
        ):

            async def pinecone_count() -> int:
                return sum(len(records) for records in fake.namespaces.values())

            yield Backend(lambda resolver: PineconeVectorStore(store.index, resolver),
                          pinecone_count, PineconeVectorAdmin(store))
        return
    if request.param == "embedded-sqlite":
        url = sqlite_templates.fresh()
    elif postgres_templates is None:
        pytest.skip("PostgreSQL tests need TENANTRY_TEST_DATABASE_URL")
    else:
        url = postgres_templates.fresh()
    db = Database(url)

    async def embedded_count() -> int:
        return int(await fetch_value(db, select(func.count()).select_from(memory_chunks)) or 0)

    yield Backend(lambda resolver: EmbeddedVectorStore(db, resolver), embedded_count,
                  EmbeddedVectorAdmin(db))
    await db.dispose()
    if postgres_templates is not None and request.param == "embedded-postgresql":
        postgres_templates.drop(url)


async def test_a_search_never_returns_another_tenants_chunks(backend: Backend) -> None:
    store = backend.make(None)
    alpha, beta = ctx_for("alpha"), ctx_for("beta")
    await store.upsert(alpha, await items("handbook.md", "alpha holidays policy", "alpha pay"))
    await store.upsert(beta, await items("handbook.md", "beta holidays policy", "beta pay"))
    assert set(await ask(store, alpha, "holidays policy")) == {
        "alpha holidays policy", "alpha pay"}
    assert set(await ask(store, beta, "beta holidays policy", top_k=1000)) == {
        "beta holidays policy", "beta pay"}
    assert await ask(store, ctx_for("gamma"), "holidays policy") == []


async def test_results_come_best_first_with_cosine_scores(backend: Backend) -> None:
    store = backend.make(None)
    ctx = ctx_for("alpha")
    await store.upsert(ctx, await items("notes", "red apples", "green pears", "red apples pie"))
    query = (await EMBEDDER.embed(["red apples"]))[0]
    matches = await store.query(ctx, query, 2)
    assert [m.text for m in matches] == ["red apples", "red apples pie"]
    assert matches[0].score == pytest.approx(1.0, abs=1e-5)
    assert -1.0 <= matches[1].score < matches[0].score
    assert (matches[0].source, matches[0].chunk, matches[0].id) == ("notes", 0, "notes#0")


async def test_upsert_is_idempotent_on_id(backend: Backend) -> None:
    store = backend.make(None)
    ctx = ctx_for("alpha")
    await store.upsert(ctx, await items("faq", "first answer", "second answer"))
    await store.upsert(ctx, await items("faq", "first answer", "second answer"))
    assert await backend.stored() == 2
    assert await store.upsert(ctx, await items("faq", "first answer, revised")) == 1
    assert await backend.stored() == 2
    assert sorted(await ask(store, ctx, "answer")) == ["first answer, revised", "second answer"]


async def test_metadata_round_trips_beside_the_reserved_fields(backend: Backend) -> None:
    store = backend.make(None)
    ctx = ctx_for("alpha")
    await store.upsert(ctx, await items("a.pdf", "quarterly revenue", lang="en", tags=["q3"]))
    [match] = await store.query(ctx, (await EMBEDDER.embed(["revenue"]))[0], 5)
    assert dict(match.metadata) == {"lang": "en", "tags": ["q3"]}


async def test_delete_by_source_removes_its_chunks_and_nothing_else(backend: Backend) -> None:
    store = backend.make(None)
    alpha, beta = ctx_for("alpha"), ctx_for("beta")
    await store.upsert(alpha, await items("doc/one", "apple one", "apple two", "apple three"))
    await store.upsert(alpha, await items("doc/one#draft", "apple draft"))
    await store.upsert(alpha, await items("doc/two", "apple four"))
    await store.upsert(beta, await items("doc/one", "apple beta"))
    assert await store.delete_source(alpha, "doc/one") == 3
    assert sorted(await ask(store, alpha, "apple")) == ["apple draft", "apple four"]
    assert await ask(store, beta, "apple") == ["apple beta"]
    assert await store.delete_source(alpha, "doc/one") == 0
    assert await backend.stored() == 3


async def test_replacing_a_source_leaves_exactly_its_new_version(backend: Backend) -> None:
    store = backend.make(None)
    alpha, beta = ctx_for("alpha"), ctx_for("beta")
    await store.upsert(alpha, await items("doc/one", "apple one", "apple two", "apple three"))
    await store.upsert(alpha, await items("doc/one#draft", "apple draft"))
    await store.upsert(beta, await items("doc/one", "apple beta"))

    assert await store.replace_source(alpha, "doc/one", await items("doc/one", "apple new")) == 1

    assert sorted(await ask(store, alpha, "apple")) == ["apple draft", "apple new"]
    assert await ask(store, beta, "apple") == ["apple beta"]
    assert await store.replace_source(alpha, "doc/one", []) == 0
    assert await ask(store, alpha, "apple") == ["apple draft"]
    with pytest.raises(InvalidInput, match="must be of that source"):
        await store.replace_source(alpha, "doc/one", await items("doc/two", "apple"))


async def test_purge_removes_everything_of_that_tenant_only(backend: Backend) -> None:
    store = backend.make(None)
    alpha, beta = ctx_for("alpha"), ctx_for("beta")
    await store.upsert(alpha, await items("x", "kiwi", "mango"))
    await store.upsert(beta, await items("x", "kiwi beta"))
    await backend.admin.purge("alpha")
    assert await ask(store, alpha, "kiwi mango") == []
    assert await ask(store, beta, "kiwi") == ["kiwi beta"]
    await backend.admin.purge("beta")
    await backend.admin.purge("beta")
    assert await backend.stored() == 0


async def test_a_bare_tenant_id_reaches_no_store_method(backend: Backend) -> None:
    """A capability holding the store can only use it with its run's context."""
    store = backend.make(None)
    await store.upsert(ctx_for("alpha"), await items("x", "kiwi"))
    vector = (await EMBEDDER.embed(["kiwi"]))[0]
    bare: Any = "alpha"
    with pytest.raises(NoTenant):
        await store.query(bare, vector, 3)
    with pytest.raises(NoTenant):
        await store.upsert(bare, await items("y", "mango"))
    with pytest.raises(NoTenant):
        await store.delete_source(bare, "x")
    assert not hasattr(store, "purge"), "erasing a tenant is the administrative side's"
    assert await backend.stored() == 1


@pytest.mark.parametrize("subject", ["missing", "none"])
async def test_a_context_without_tenant_is_refused(backend: Backend, subject: str) -> None:
    store = backend.make(None)
    ctx: Any = tenantless() if subject == "missing" else None
    vector = (await EMBEDDER.embed(["anything"]))[0]
    with pytest.raises(NoTenant):
        await store.upsert(ctx, await items("s", "text"))
    with pytest.raises(NoTenant):
        await store.query(ctx, vector, 3)
    with pytest.raises(NoTenant):
        await store.delete_source(ctx, "s")
    with pytest.raises(NoTenant):
        await backend.admin.purge("")
    assert await backend.stored() == 0


class _Constant:
    def __init__(self, answer: str) -> None:
        self.answer = answer

    def partition(self, tenant_id: str) -> str:
        return self.answer


class _Unknown:
    def partition(self, tenant_id: str) -> str:
        raise BadPartition(f"no partition configured for {tenant_id!r}")


@pytest.mark.parametrize("resolver", [
    _Constant(""), _Constant("  "), _Constant("__default__"), _Constant("default"), _Unknown(),
], ids=["empty", "blank", "pinecone-default", "default", "unknown-tenant"])
async def test_a_resolver_that_gives_no_partition_is_refused(
    backend: Backend, resolver: PartitionResolver
) -> None:
    store = backend.make(resolver)
    ctx = ctx_for("alpha")
    vector = (await EMBEDDER.embed(["anything"]))[0]
    with pytest.raises(BadPartition):
        await store.upsert(ctx, await items("s", "text"))
    with pytest.raises(BadPartition):
        await store.query(ctx, vector, 3)
    with pytest.raises(BadPartition):
        await store.delete_source(ctx, "s")
    assert await backend.stored() == 0


async def test_a_custom_resolver_keeps_tenants_apart(backend: Backend) -> None:
    store = backend.make(TenantPartitions(prefix="kb-"))
    await store.upsert(ctx_for("alpha"), await items("s", "cherry"))
    assert await ask(store, ctx_for("alpha"), "cherry") == ["cherry"]
    assert await ask(store, ctx_for("beta"), "cherry") == []


@pytest.mark.parametrize("top_k", [0, -1, 1001])
async def test_top_k_out_of_range_is_refused(backend: Backend, top_k: int) -> None:
    store = backend.make(None)
    with pytest.raises(InvalidInput, match="top_k"):
        await store.query(ctx_for("alpha"), np.ones(EMBEDDER.dim, dtype=np.float32), top_k)


async def test_a_zero_query_vector_is_refused(backend: Backend) -> None:
    store = backend.make(None)
    with pytest.raises(InvalidInput, match="zero vector"):
        await store.query(ctx_for("alpha"), np.zeros(EMBEDDER.dim, dtype=np.float32), 3)
