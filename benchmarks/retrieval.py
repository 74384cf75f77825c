"""Benchmark of tenant memory: top-10 retrieval in one partition, and embedding throughput.

Each figure comes with a baseline measured in the same run, so the ratio shows what
the store or the model adds:

- top-10 search through ``EmbeddedVectorStore.query`` in one tenant's partition of
  ``--per-tenant`` vectors among ``--tenants`` tenants (SQLite by default), median and
  p99, against scoring the same vectors with numpy alone, already in memory. The store
  keeps partition matrices in memory, so three cases are timed apart: the first search
  of the partition (cold), searches of the unchanged partition (warm), and the first
  search after a one-chunk upsert to the partition (cold after write: the cached
  matrix is stale and read again);
- WordLlama embedding throughput in chunks per second (chunks cut by ``chunk_text``),
  against the feature-hashing embedder on the same chunks.

The table is filled through the store's own ``upsert``. If the rate so far says one
more tenant would take the load past ``--insert-budget-s``, fewer tenants are loaded
and the run says so.

    .venv/bin/python benchmarks/retrieval.py [--tenants 100] [--per-tenant 10000]
        [--queries 300] [--writes 30] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from figures import percentile

from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.db.engine import Database
from core.db.migrate import upgrade
from core.vectors.base import VectorItem
from core.vectors.chunking import chunk_text
from core.vectors.embedded import EmbeddedVectorStore, top_indices
from core.vectors.embeddings import HashingEmbedder, WordLlamaEmbedder

WORDS = (
    "invoice", "policy", "holiday", "deployment", "customer", "contract", "renewal",
    "security", "audit", "payroll", "onboarding", "laptop", "expense", "travel", "incident",
    "database", "migration", "roadmap", "pricing", "quota", "support", "escalation", "backup",
    "retention", "compliance", "training", "meeting", "agenda", "budget",
)


def ctx_for(tenant_id: str) -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id="bench", principal_kind="service", scope=(),
        ceilings=RunCeilings(1, 1, 1, 1), remaining=MonthlyRemaining(1, 1, 1), initiator="cron",
    )



def document(rng: np.random.Generator, paragraphs: int) -> str:
    def sentence() -> str:
        words = rng.choice(WORDS, size=int(rng.integers(6, 18)))
        return " ".join(str(w) for w in words).capitalize() + "."

    return "\n\n".join(
        " ".join(sentence() for _ in range(int(rng.integers(3, 9)))) for _ in range(paragraphs)
    )


async def load_tenant(
    store: EmbeddedVectorStore, tenant: str, count: int, dim: int, text_chars: int,
    rng: np.random.Generator,
) -> np.ndarray:
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    filler = "x" * max(0, text_chars - 40)
    ctx = ctx_for(tenant)
    for start in range(0, count, 5000):
        batch = [
            VectorItem(f"doc-{i // 20}.md", i % 20, f"{tenant} chunk {i} {filler}", vectors[i])
            for i in range(start, min(count, start + 5000))
        ]
        await store.upsert(ctx, batch)
    return vectors


async def retrieval(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        db = Database(url)
        await upgrade(db)
        store = EmbeddedVectorStore(db)
        started = time.perf_counter()
        target = await load_tenant(store, "t000", args.per_tenant, args.dim, args.text_chars, rng)
        tenants = 1
        while tenants < args.tenants:
            elapsed = time.perf_counter() - started
            if elapsed / tenants * (tenants + 1) > args.insert_budget_s:
                break
            await load_tenant(
                store, f"t{tenants:03d}", args.per_tenant, args.dim, args.text_chars, rng
            )
            tenants += 1
        load_s = time.perf_counter() - started
        rows = tenants * args.per_tenant
        print(f"database: {'SQLite' if db.is_sqlite else 'PostgreSQL'}; loaded {tenants} tenants "
              f"x {args.per_tenant:,} vectors (dim {args.dim}) = {rows:,} rows in {load_s:.1f} s "
              f"({rows / load_s:,.0f} rows/s)")
        if tenants < args.tenants:
            print(f"  (asked for {args.tenants} tenants; at {load_s / tenants:.1f} s each, one "
                  f"more would exceed the {args.insert_budget_s:.0f} s budget)")

        ctx = ctx_for("t000")
        queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
        cold_ms = await timed_query(store, ctx, queries[0])
        warm_ms = [await timed_query(store, ctx, query) for query in queries]
        after_write_ms: list[float] = []
        for n in range(args.writes):
            item = VectorItem(f"new-{n}.md", 0, f"t000 new {n}", queries[n])
            await store.upsert(ctx, [item])
            after_write_ms.append(await timed_query(store, ctx, queries[n]))
        stats = store.cache.stats()

        unit = target / np.linalg.norm(target, axis=1, keepdims=True)
        numpy_ms: list[float] = []
        for query in queries:
            t0 = time.perf_counter()
            top_indices(unit @ (query / np.linalg.norm(query)), 10)
            numpy_ms.append((time.perf_counter() - t0) * 1000)
        await db.dispose()

    base_med, base_p99 = statistics.median(numpy_ms), percentile(numpy_ms, 99)
    print(f"top-10 search, one partition of {args.per_tenant:,} ({args.queries} warm queries, "
          f"{args.writes} writes):")
    print(f"  store, first search (cold)  {cold_ms:8.2f} ms")
    for name, samples in (("store, warm", warm_ms), ("store, cold after write", after_write_ms)):
        med, p99 = statistics.median(samples), percentile(samples, 99)
        print(f"  {name:<26} median {med:8.2f} ms   p99 {p99:8.2f} ms   "
              f"(/ numpy: median {med / base_med:6.1f} x, p99 {p99 / base_p99:6.1f} x)")
    print(f"  numpy scoring alone        median {base_med:8.2f} ms   p99 {base_p99:8.2f} ms")
    print(f"  cache: {stats.hits} hits, {stats.misses} misses, {stats.entries} entries, "
          f"{stats.bytes / 2**20:.1f} MiB")
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


async def timed_query(store: EmbeddedVectorStore, ctx: TenantContext, query: np.ndarray) -> float:
    t0 = time.perf_counter()
    matches = await store.query(ctx, query, 10)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    assert len(matches) == 10 and all(m.text.startswith("t000 ") for m in matches)
    return elapsed_ms


async def embedding(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(11)
    chunks: list[str] = []
    while len(chunks) < args.embed_chunks:
        chunks.extend(chunk_text(document(rng, 12), max_chars=1200, overlap=200))
    chunks = chunks[: args.embed_chunks]
    mean_chars = statistics.mean(len(c) for c in chunks)
    wordllama = await WordLlamaEmbedder.load()
    hashing = HashingEmbedder(dim=256)
    await wordllama.embed(chunks[:64])
    rates: dict[str, float] = {}
    for name, embedder in (("wordllama", wordllama), ("hashing", hashing)):
        t0 = time.perf_counter()
        for start in range(0, len(chunks), 256):
            await embedder.embed(chunks[start : start + 256])
        rates[name] = len(chunks) / (time.perf_counter() - t0)
    print(f"embedding {len(chunks):,} chunks (mean {mean_chars:.0f} chars), batches of 256:")
    print(f"  WordLlama l2_supercat 256  {rates['wordllama']:10,.0f} chunks/s")
    print(f"  feature hashing 256        {rates['hashing']:10,.0f} chunks/s")
    print(f"  ratio wordllama / hashing  {rates['wordllama'] / rates['hashing']:10.2f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--per-tenant", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--text-chars", type=int, default=300)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--writes", type=int, default=30)
    parser.add_argument("--insert-budget-s", type=float, default=120.0)
    parser.add_argument("--embed-chunks", type=int, default=5_000)
    parser.add_argument("--database-url", help="an empty database to use instead of SQLite")
    args = parser.parse_args()
    asyncio.run(retrieval(args))
    asyncio.run(embedding(args))


if __name__ == "__main__":
    main()
