"""The embedded vector store: chunks in the app database, exact cosine search with numpy.

No extra service: memory lives in the app's own SQLite file or PostgreSQL database. A
search scores every vector of the tenant's partition exactly, then reads the text of
the winners only; that stays fast for the tens of thousands of chunks a workspace's
documents make (``benchmarks/retrieval.py``).

Reading a partition's vectors costs far more than scoring them, so each store keeps
the matrices it has read in a ``PartitionCache``, and the database alone says whether
one is still right: every write raises the revisions of the tenant's partitions in
``memory_partitions`` in its transaction, and a search uses a matrix only if it was
read at the revision it finds (one indexed row). Other processes' writes therefore
invalidate it too, and a deleted chunk is never served again. Revisions are never
deleted, a purge included: one that started again from 1 could match an old matrix.

Deletion is hard: rows are deleted, and SQLite runs with ``secure_delete`` so that
the freed pages are zeroed rather than left readable in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from core.context import TenantContext
from core.db.engine import Database, dialect_insert, reads
from core.vectors.base import (
    Match,
    PartitionResolver,
    TenantPartitions,
    VectorItem,
    check_query,
    check_replacement,
    check_source,
    require_tenant_id,
    resolve_partition,
)
from core.vectors.partition_cache import (
    DEFAULT_CACHE_BYTES,
    PartitionCache,
    PartitionKey,
    PartitionMatrix,
)
from core.vectors.tables import memory_chunks, memory_partitions


class EmbeddedVectorStore:
    """A ``VectorStore`` on the app database (tables ``memory_chunks``, ``memory_partitions``).

    Args:
        db: The app database.
        resolver: Names each tenant's partition; ``tenant-<id>`` by default.
        cache_bytes: Bound of the in-memory cache of partition matrices (0 turns it off).
    """

    def __init__(
        self,
        db: Database,
        resolver: PartitionResolver | None = None,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.db = db
        self.resolver: PartitionResolver = resolver or TenantPartitions()
        self.cache = PartitionCache(cache_bytes)

    async def upsert(self, ctx: TenantContext, items: Sequence[VectorItem]) -> int:
        """Store chunks in the tenant's partition; how many distinct ones (the last wins)."""
        tenant_id, partition = resolve_partition(self.resolver, ctx)
        rows = self._rows(tenant_id, partition, items)
        if not rows:
            return 0
        await self.db.run(_upsert, tenant_id, partition, rows)
        return len(rows)

    @staticmethod
    def _rows(tenant_id: str, partition: str,
              items: Sequence[VectorItem]) -> list[dict[str, Any]]:
        """One row per distinct chunk id (the last wins)."""
        now = datetime.now(UTC)
        return list({
            item.id: {"tenant_id": tenant_id, "id": item.id, "partition": partition,
                      "source": item.source, "chunk": item.chunk, "text": item.text,
                      "vector": item.vector.tobytes(), "dim": item.vector.size,
                      "metadata": dict(item.metadata), "created_at": now}
            for item in items
        }.values())

    async def query(self, ctx: TenantContext, vector: npt.ArrayLike, top_k: int) -> list[Match]:
        """The ``top_k`` chunks of the tenant's partition most similar to ``vector``.

        Only vectors of the query's dimension are compared: chunks embedded by another
        model live on in the partition but cannot be ranked against this query.
        """
        tenant_id, partition = resolve_partition(self.resolver, ctx)
        query = check_query(vector, top_k)
        key = PartitionKey(tenant_id, partition, int(query.shape[0]))
        return await self.db.run(self._search, key, query, top_k)

    @reads
    def _search(
        self, conn: Connection, key: PartitionKey, query: npt.NDArray[np.float32], top_k: int
    ) -> list[Match]:
        """Score the partition (its cached matrix if still current), then read the winners."""
        revision = _revision(conn, key)
        entry = self.cache.get(key, revision)
        if entry is None:
            entry = self._load(conn, key, revision)
        if not entry.ids:
            return []
        scores = {entry.ids[i]: score for i, score in top_indices(entry.matrix @ query, top_k)}
        c = memory_chunks.c
        details = conn.execute(
            select(c.id, c.source, c.chunk, c.text, c.metadata).where(
                c.tenant_id == key.tenant_id,
                # Compared as an expression, the partition cannot steer SQLite's planner to
                # the partition index (a scan of every chunk of the partition) instead of
                # the primary key (one lookup per winner).
                c.partition.concat("") == key.partition,
                c.id.in_(list(scores)),
            )
        ).all()
        rows = {row.id: row for row in details}
        # On PostgreSQL a winner deleted after the revision was read is gone by now.
        found = [(rows[chunk_id], score) for chunk_id, score in scores.items() if chunk_id in rows]
        return [
            Match(id=row.id, source=row.source, chunk=row.chunk, text=row.text, score=score,
                  metadata=dict(row.metadata))
            for row, score in found
        ]

    def _load(self, conn: Connection, key: PartitionKey, revision: int | None) -> PartitionMatrix:
        """Read the ids and vectors of a partition, and cache them if ``revision`` held.

        A partition without a revision has never been written through a store that
        keeps one, so nothing could tell when its matrix went stale: it is not cached.
        """
        rows = conn.execute(
            select(memory_chunks.c.id, memory_chunks.c.vector)
            .filter_by(tenant_id=key.tenant_id, partition=key.partition, dim=key.dim)
        ).all()
        matrix = np.frombuffer(b"".join(row.vector for row in rows), dtype=np.float32)
        entry = PartitionMatrix(
            revision=revision or 0,
            ids=tuple(row.id for row in rows),
            matrix=matrix.reshape(len(rows), key.dim),
        )
        # On PostgreSQL each statement reads its own snapshot: a write committed between
        # the two reads of the revision would otherwise be cached under the older one.
        if revision is not None and _revision(conn, key) == revision:
            self.cache.put(key, entry)
        return entry

    async def delete_source(self, ctx: TenantContext, source: str) -> int:
        """Delete every chunk of ``source`` the tenant has, whatever its partition."""
        tenant_id, _ = resolve_partition(self.resolver, ctx)
        check_source(source)
        return await self.db.run(_delete_chunks, tenant_id, memory_chunks.c.source == source)

    async def replace_source(self, ctx: TenantContext, source: str,
                             items: Sequence[VectorItem]) -> int:
        """The old chunks of ``source`` out and ``items`` in, in one transaction."""
        tenant_id, partition = resolve_partition(self.resolver, ctx)
        check_replacement(source, items)
        rows = self._rows(tenant_id, partition, items)

        def replace(conn: Connection) -> None:
            _delete_chunks(conn, tenant_id, memory_chunks.c.source == source)
            if rows:
                _upsert(conn, tenant_id, partition, rows)

        await self.db.run(replace)
        return len(rows)


class EmbeddedVectorAdmin:
    """The embedded store's administrative side: erasing a tenant (``VectorAdmin``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def purge(self, tenant_id: str) -> None:
        """Delete every chunk the tenant has, in every partition: the vectors alone.

        A tenant purge calls ``purge_chunks`` in its own transaction instead.
        """
        await self.db.run(purge_chunks, require_tenant_id(tenant_id))


def _upsert(conn: Connection, tenant_id: str, partition: str, rows: list[dict[str, Any]]) -> None:
    insert = dialect_insert(conn, memory_chunks)
    statement = insert.on_conflict_do_update(
        index_elements=[memory_chunks.c.tenant_id, memory_chunks.c.id],
        set_={name: insert.excluded[name] for name in (
            "partition", "source", "chunk", "text", "vector", "dim", "metadata", "created_at",
        )},
    )
    conn.execute(statement, rows)
    partitions = dialect_insert(conn, memory_partitions)
    conn.execute(
        partitions.values(tenant_id=tenant_id, partition=partition, revision=1)
        .on_conflict_do_nothing()
    )
    # A chunk's id is unique per tenant, not per partition, so an upsert under a new
    # partition scheme moves chunks out of the old partition: that one changed too.
    _raise_revisions(conn, tenant_id)


def purge_chunks(conn: Connection, tenant_id: str) -> int:
    """Delete every chunk of a tenant (part of a purge); how many went."""
    return _delete_chunks(conn, tenant_id)


def _delete_chunks(conn: Connection, tenant_id: str, *where: ColumnElement[bool]) -> int:
    result = conn.execute(delete(memory_chunks).filter_by(tenant_id=tenant_id).where(*where))
    if result.rowcount:
        _raise_revisions(conn, tenant_id)
    return int(result.rowcount)


def _raise_revisions(conn: Connection, tenant_id: str) -> None:
    """Raise the revision of every partition of the tenant, after its chunks changed.

    Chunks first and revisions last, always in that order, so that two transactions
    never wait for each other's locks the other way round on PostgreSQL.
    """
    conn.execute(
        update(memory_partitions)
        .filter_by(tenant_id=tenant_id)
        .values(revision=memory_partitions.c.revision + 1)
    )


def _revision(conn: Connection, key: PartitionKey) -> int | None:
    """The partition's revision, or ``None`` if nothing has been written to it yet."""
    revision = conn.scalar(
        select(memory_partitions.c.revision)
        .filter_by(tenant_id=key.tenant_id, partition=key.partition)
    )
    return None if revision is None else int(revision)


def top_indices(scores: npt.NDArray[np.float32], top_k: int) -> list[tuple[int, float]]:
    """The positions and values of the ``top_k`` highest scores, highest first.

    ``argpartition`` finds the winners in linear time; only they are sorted.
    """
    count = min(top_k, int(scores.shape[0]))
    if count == 0:
        return []
    winners = np.argpartition(-scores, count - 1)[:count]
    ordered = winners[np.argsort(-scores[winners], kind="stable")]
    return [(int(i), float(scores[i])) for i in ordered]

