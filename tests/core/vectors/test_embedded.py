"""Tests for core.vectors.embedded beyond the shared contract: storage, hard deletion, and
the partition cache, which must never outlive a write made by this or any other store."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, select
from sqlalchemy.engine import make_url

from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.db.engine import Database
from core.db.migrate import alembic_config, upgrade
from core.db.schema import metadata
from core.vectors.base import VectorItem
from core.vectors.embedded import (
    EmbeddedVectorAdmin,
    EmbeddedVectorStore,
    purge_chunks,
    top_indices,
)
from core.vectors.embeddings import HashingEmbedder
from core.vectors.tables import memory_chunks, memory_partitions
from tests.support.databases import SqliteTemplates, execute, fetch_all

EMBEDDER = HashingEmbedder(dim=64)
MEMORY_TABLES = ("memory_chunks", "memory_partitions", "conversation_turns")
Write = Callable[[EmbeddedVectorStore], Awaitable[None]]


def ctx_for(tenant_id: str) -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id="u1", principal_kind="user", scope=(),
        ceilings=RunCeilings(1, 1, 1, 1), remaining=MonthlyRemaining(1, 1, 1), initiator="user",
    )


async def item(source: str, chunk: int, text: str) -> VectorItem:
    return VectorItem(source, chunk, text, (await EMBEDDER.embed([text]))[0])


def file_bytes_after_checkpoint(path: Path) -> bytes:
    """The database file (and any WAL left) once every committed page is in the file."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def test_deleted_chunks_leave_no_text_in_the_sqlite_file(
    sqlite_templates: SqliteTemplates,
) -> None:
    url = sqlite_templates.fresh()
    path = Path(str(make_url(url).database))
    secret, replaced = secrets.token_hex(16).encode(), secrets.token_hex(16).encode()
    ctx = ctx_for("acme")
    db = Database(url)
    store = EmbeddedVectorStore(db)
    await store.upsert(ctx, [
        await item("payroll.txt", 0, f"salary band {secret.decode()} is confidential"),
        await item("notes.txt", 0, f"draft {replaced.decode()}"),
        await item("public.txt", 0, "office opening hours"),
    ])
    await db.dispose()
    before = file_bytes_after_checkpoint(path)
    assert secret in before and replaced in before

    db = Database(url)
    store = EmbeddedVectorStore(db)
    assert await store.delete_source(ctx, "payroll.txt") == 1
    await store.upsert(ctx, [await item("notes.txt", 0, "final version")])
    await db.dispose()
    after = file_bytes_after_checkpoint(path)
    assert secret not in after
    assert replaced not in after
    assert b"office opening hours" in after


async def test_vectors_of_another_dimension_are_not_compared(db: Database) -> None:
    store = EmbeddedVectorStore(db)
    ctx = ctx_for("acme")
    await store.upsert(ctx, [await item("small", 0, "pear tart")])
    wide = (await HashingEmbedder(dim=128).embed(["pear tart"]))[0]
    await store.upsert(ctx, [VectorItem("wide", 0, "pear tart", wide)])
    [match] = await store.query(ctx, wide, 10)
    assert match.source == "wide"


async def test_purge_chunks_removes_one_tenants_chunks(db: Database) -> None:
    store = EmbeddedVectorStore(db)
    await store.upsert(ctx_for("acme"), [await item("a", 0, "x"), await item("a", 1, "y")])
    await store.upsert(ctx_for("globex"), [await item("a", 0, "x")])
    assert await db.run(purge_chunks, "acme") == 2
    assert await store.query(ctx_for("acme"), np.ones(64, dtype=np.float32), 5) == []
    assert len(await store.query(ctx_for("globex"), np.ones(64, dtype=np.float32), 5)) == 1


def test_top_indices_orders_the_winners_and_handles_short_lists() -> None:
    scores = np.array([0.1, 0.9, -0.5, 0.7, 0.9], dtype=np.float32)
    assert [i for i, _ in top_indices(scores, 3)] == [1, 4, 3]
    assert [i for i, _ in top_indices(scores, 10)] == [1, 4, 3, 0, 2]
    assert top_indices(np.zeros(0, dtype=np.float32), 3) == []


async def test_the_migration_creates_the_tables_as_declared(db: Database) -> None:
    def differences(sync: Connection) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata)
                if any(name in str(d) for name in MEMORY_TABLES)]

    assert await db.run(differences) == []


async def search(store: EmbeddedVectorStore, tenant_id: str, text: str = "apple") -> list[str]:
    vector = (await EMBEDDER.embed([text]))[0]
    return sorted(m.text for m in await store.query(ctx_for(tenant_id), vector, 10))


@pytest.fixture
async def other_store(database_url: str) -> AsyncIterator[EmbeddedVectorStore]:
    """A store with its own engine on the same database, as another process would have."""
    database = Database(database_url)
    yield EmbeddedVectorStore(database)
    await database.dispose()


async def test_a_search_of_an_unchanged_partition_does_not_read_its_vectors_again(
    db: Database,
) -> None:
    store = EmbeddedVectorStore(db)
    await store.upsert(ctx_for("acme"), [await item("notes", 0, "apple pie"),
                                         await item("notes", 1, "pear tart")])
    first = await search(store, "acme")
    assert (store.cache.stats().hits, store.cache.stats().misses) == (0, 1)
    assert await search(store, "acme") == first == ["apple pie", "pear tart"]
    stats = store.cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)
    assert stats.bytes > 2 * 64 * 4


async def _add_kiwi(store: EmbeddedVectorStore) -> None:
    await store.upsert(ctx_for("acme"), [await item("fruit", 0, "apple kiwi")])


async def _replace_pie(store: EmbeddedVectorStore) -> None:
    await store.upsert(ctx_for("acme"), [await item("notes", 0, "apple crumble")])


async def _delete_notes(store: EmbeddedVectorStore) -> None:
    assert await store.delete_source(ctx_for("acme"), "notes") == 2


async def _purge(store: EmbeddedVectorStore) -> None:
    await EmbeddedVectorAdmin(store.db).purge("acme")


async def _purge_in_callers_transaction(store: EmbeddedVectorStore) -> None:
    assert await store.db.run(purge_chunks, "acme") == 2


WRITES: dict[str, tuple[Write, list[str]]] = {
    "upsert-new": (_add_kiwi, ["apple kiwi", "apple pie", "pear tart"]),
    "upsert-replace": (_replace_pie, ["apple crumble", "pear tart"]),
    "delete-source": (_delete_notes, []),
    "purge": (_purge, []),
    "purge-tenant": (_purge_in_callers_transaction, []),
}


@pytest.mark.parametrize("writer", ["same", "other"])
@pytest.mark.parametrize("write", list(WRITES))
async def test_a_write_is_seen_at_once_by_this_store_and_by_another_process(
    db: Database, other_store: EmbeddedVectorStore, write: str, writer: str
) -> None:
    store = EmbeddedVectorStore(db)
    await store.upsert(ctx_for("acme"), [await item("notes", 0, "apple pie"),
                                         await item("notes", 1, "pear tart")])
    before = ["apple pie", "pear tart"]
    assert await search(store, "acme") == await search(other_store, "acme") == before
    assert await search(store, "acme") == await search(other_store, "acme") == before
    assert store.cache.stats().hits == other_store.cache.stats().hits == 1

    change, expected = WRITES[write]
    await change(store if writer == "same" else other_store)
    assert await search(store, "acme") == expected
    assert await search(other_store, "acme") == expected


async def test_a_partition_written_again_after_a_purge_is_not_served_from_before(
    db: Database, other_store: EmbeddedVectorStore
) -> None:
    store = EmbeddedVectorStore(db)
    await store.upsert(ctx_for("acme"), [await item("old", 0, "apple old")])
    assert await search(store, "acme") == ["apple old"]
    await EmbeddedVectorAdmin(other_store.db).purge("acme")
    await other_store.upsert(ctx_for("acme"), [await item("new", 0, "apple new")])
    assert await search(store, "acme") == ["apple new"]


async def test_tenants_sharing_a_partition_name_never_see_each_others_chunks(
    db: Database,
) -> None:
    # A resolver that gives every tenant the same name is refused at service start
    # (check_resolver); the store must keep them apart all the same.
    store = EmbeddedVectorStore(db, _Shared())
    await store.upsert(ctx_for("alpha"), [await item("doc", 0, "apple alpha")])
    await store.upsert(ctx_for("beta"), [await item("doc", 0, "apple beta"),
                                         await item("doc", 1, "apple beta two")])
    assert await search(store, "alpha") == ["apple alpha"]
    assert await search(store, "beta") == ["apple beta", "apple beta two"]
    assert await search(store, "alpha") == ["apple alpha"]
    assert store.cache.stats().entries == 2
    await store.upsert(ctx_for("alpha"), [await item("doc", 0, "apple alpha again")])
    hits = store.cache.stats().hits
    # A write of one tenant leaves the other's cached matrix valid.
    assert await search(store, "beta") == ["apple beta", "apple beta two"]
    assert store.cache.stats().hits == hits + 1
    assert await search(store, "alpha") == ["apple alpha again"]


class _Shared:
    def partition(self, tenant_id: str) -> str:
        return "shared-kb"


async def test_the_cache_bound_evicts_the_least_recently_searched_partition(
    db: Database,
) -> None:
    probe = EmbeddedVectorStore(db)
    for tenant_id in ("alpha", "beta"):
        await probe.upsert(ctx_for(tenant_id), [await item("doc", 0, f"apple {tenant_id}")])
    await search(probe, "alpha")
    one_partition = probe.cache.stats().bytes

    store = EmbeddedVectorStore(db, cache_bytes=one_partition)
    assert await search(store, "alpha") == ["apple alpha"]
    assert await search(store, "beta") == ["apple beta"]
    stats = store.cache.stats()
    assert (stats.evictions, stats.entries, stats.bytes) == (1, 1, one_partition)
    assert await search(store, "alpha") == ["apple alpha"]
    assert store.cache.stats().misses == 3

    too_small = EmbeddedVectorStore(db, cache_bytes=one_partition - 1)
    assert await search(too_small, "alpha") == await search(too_small, "alpha") == [
        "apple alpha"]
    assert (too_small.cache.stats().entries, too_small.cache.stats().misses) == (0, 2)


async def test_concurrent_searches_of_a_cold_partition_agree_and_cache_it_once(
    db: Database,
) -> None:
    store, alone = EmbeddedVectorStore(db), EmbeddedVectorStore(db)
    await store.upsert(ctx_for("acme"), [await item("notes", i, f"apple {i}") for i in range(20)])
    results = await asyncio.gather(*(search(store, "acme") for _ in range(5)))
    assert results == [await search(alone, "acme")] * 5
    assert len(results[0]) == 10
    assert (store.cache.stats().entries, store.cache.stats().bytes) == (
        1, alone.cache.stats().bytes)


async def test_chunks_written_without_a_revision_are_found_but_not_cached(db: Database) -> None:
    vector = (await EMBEDDER.embed(["apple raw"]))[0]
    await execute(db, insert(memory_chunks).values(
        tenant_id="acme", id="raw#0", partition="tenant-acme", source="raw", chunk=0,
        text="apple raw", vector=vector.tobytes(), dim=64, metadata={},
        created_at=datetime.now(UTC)))
    store = EmbeddedVectorStore(db)
    assert await search(store, "acme") == await search(store, "acme") == ["apple raw"]
    assert (store.cache.stats().entries, store.cache.stats().misses) == (0, 2)


async def test_the_migration_gives_existing_partitions_a_revision(db: Database) -> None:
    await db.run(lambda conn: command.downgrade(alembic_config(conn), "0007"))
    vector = (await EMBEDDER.embed(["apple old"]))[0]
    await execute(db, insert(memory_chunks).values(
        tenant_id="acme", id="old#0", partition="tenant-acme", source="old", chunk=0,
        text="apple old", vector=vector.tobytes(), dim=64, metadata={},
        created_at=datetime.now(UTC)))
    await upgrade(db)
    rows = await fetch_all(db, select(memory_partitions))
    assert [tuple(row) for row in rows] == [("acme", "tenant-acme", 1)]
    store = EmbeddedVectorStore(db)
    assert await search(store, "acme") == await search(store, "acme") == ["apple old"]
    assert store.cache.stats().hits == 1
    await store.upsert(ctx_for("acme"), [await item("new", 0, "apple new")])
    assert await search(store, "acme") == ["apple new", "apple old"]
