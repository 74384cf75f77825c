"""The Pinecone store against a real index; runs only with credentials, and cleans up.

Needs ``PINECONE_API_KEY`` and ``PINECONE_INDEX_HOST`` (the data-plane host of an
existing dense, cosine index; any dimension). Everything it writes goes to namespaces
named ``tenantry-test-<random>-<tenant>``, deleted at the end, so it creates nothing
else and never touches the index's other namespaces.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

import numpy.typing as npt
import pytest

from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.vectors.base import TenantPartitions, VectorItem
from core.vectors.embeddings import HashingEmbedder
from core.vectors.pinecone_store import PineconeVectorAdmin, PineconeVectorStore

API_KEY = os.environ.get("PINECONE_API_KEY", "")
HOST = os.environ.get("PINECONE_INDEX_HOST", "")
CONSISTENCY_WAIT_S = 90.0

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (API_KEY and HOST),
        reason="live Pinecone test needs PINECONE_API_KEY and PINECONE_INDEX_HOST",
    ),
]


def ctx_for(tenant_id: str) -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id="u1", principal_kind="user", scope=(),
        ceilings=RunCeilings(1, 1, 1, 1), remaining=MonthlyRemaining(1, 1, 1), initiator="user",
    )


async def eventually_texts(
    store: PineconeVectorStore, ctx: TenantContext, query: npt.ArrayLike, expected: set[str]
) -> set[str]:
    """Query until the index shows ``expected``: Pinecone's reads lag its writes."""
    deadline = time.monotonic() + CONSISTENCY_WAIT_S
    while True:
        found = {m.text for m in await store.query(ctx, query, 10)}
        if found == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(2)


async def test_a_live_index_keeps_tenants_apart_and_deletes_for_real(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.undo()  # lifts the suite's network guard: this test talks to Pinecone
    resolver = TenantPartitions(prefix=f"tenantry-test-{secrets.token_hex(6)}-")
    alpha, beta = ctx_for("alpha"), ctx_for("beta")
    async with await PineconeVectorStore.connect(
        api_key=API_KEY, host=HOST, resolver=resolver
    ) as store:
        stats = await store.index.describe_index_stats()
        assert stats.dimension, "the live test needs a dense index"
        embedder = HashingEmbedder(dim=int(stats.dimension))
        texts = ["live alpha one", "live alpha two", "live alpha three"]
        vectors = await embedder.embed([*texts, "live beta", "live"])
        try:
            await store.upsert(alpha, [
                VectorItem("doc.md", i, text, vectors[i]) for i, text in enumerate(texts)])
            await store.upsert(beta, [VectorItem("doc.md", 0, "live beta", vectors[3])])
            assert await eventually_texts(store, alpha, vectors[4], set(texts)) == set(texts)
            assert await eventually_texts(store, beta, vectors[4], {"live beta"}) == {"live beta"}
            await store.delete_source(alpha, "doc.md")
            assert await eventually_texts(store, alpha, vectors[4], set()) == set()
            assert await eventually_texts(store, beta, vectors[4], {"live beta"}) == {"live beta"}
        finally:
            await PineconeVectorAdmin(store).purge(alpha.tenant_id)
            await PineconeVectorAdmin(store).purge(beta.tenant_id)
