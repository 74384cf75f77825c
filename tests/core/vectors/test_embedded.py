"""Tests for core.vectors.embedded beyond the shared contract: storage and hard deletion."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.db.engine import Database
from core.db.schema import metadata
from core.vectors.base import VectorItem
from core.vectors.embedded import EmbeddedVectorStore, purge_tenant, top_indices
from core.vectors.embeddings import HashingEmbedder
from tests.support.databases import SqliteTemplates

EMBEDDER = HashingEmbedder(dim=64)
MEMORY_TABLES = ("memory_chunks", "conversation_turns")


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


async def test_purge_tenant_joins_the_callers_transaction(db: Database) -> None:
    store = EmbeddedVectorStore(db)
    await store.upsert(ctx_for("acme"), [await item("a", 0, "x"), await item("a", 1, "y")])
    await store.upsert(ctx_for("globex"), [await item("a", 0, "x")])
    async with db.begin() as conn:
        assert await purge_tenant(conn, "acme") == 2
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

    async with db.begin() as conn:
        assert await conn.run_sync(differences) == []
