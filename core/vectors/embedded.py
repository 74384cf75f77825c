"""The embedded vector store: chunks in the app database, exact cosine search with numpy.

No extra service: the default deployment keeps its memory in the same SQLite file (or
PostgreSQL database) as everything else. A search reads the vectors of one partition
and of the context's tenant only, scores them all exactly, and then reads the text of
the winners. Exact search over a tenant's partition stays fast enough for the tens of
thousands of chunks a workspace's documents make (see ``benchmarks/retrieval.py``).

Deletion is hard: rows are deleted, and SQLite runs with ``secure_delete`` so that
the freed pages are zeroed rather than left readable in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.context import TenantContext
from core.db.engine import Database
from core.vectors.base import (
    Match,
    MetadataValue,
    PartitionResolver,
    TenantPartitions,
    VectorItem,
    check_source,
    check_top_k,
    resolve_partition,
    unit_vector,
)
from core.vectors.tables import memory_chunks

_UPSERT_BATCH = 500


class EmbeddedVectorStore:
    """A ``VectorStore`` on the app database (table ``memory_chunks``)."""

    def __init__(self, db: Database, resolver: PartitionResolver | None = None) -> None:
        self.db = db
        self.resolver: PartitionResolver = resolver or TenantPartitions()

    async def upsert(self, ctx: TenantContext, items: Sequence[VectorItem]) -> int:
        """Store chunks in the tenant's partition; a chunk with the same id is replaced.

        Returns:
            How many distinct chunks were written (later duplicates in ``items`` win).
        """
        tenant_id, partition = resolve_partition(self.resolver, ctx)
        now = datetime.now(UTC)
        rows = {
            item.id: {
                "tenant_id": tenant_id,
                "id": item.id,
                "partition": partition,
                "source": item.source,
                "chunk": item.chunk,
                "text": item.text,
                "vector": item.vector.tobytes(),
                "dim": int(item.vector.shape[0]),
                "metadata": dict(item.metadata),
                "created_at": now,
            }
            for item in items
        }
        if not rows:
            return 0
        insert = self.db.insert(memory_chunks)
        statement = insert.on_conflict_do_update(
            index_elements=[memory_chunks.c.tenant_id, memory_chunks.c.id],
            set_={
                name: insert.excluded[name]
                for name in (
                    "partition", "source", "chunk", "text", "vector", "dim", "metadata",
                    "created_at",
                )
            },
        )
        values = list(rows.values())
        async with self.db.begin() as conn:
            for start in range(0, len(values), _UPSERT_BATCH):
                await conn.execute(statement, values[start : start + _UPSERT_BATCH])
        return len(values)

    async def query(self, ctx: TenantContext, vector: npt.ArrayLike, top_k: int) -> list[Match]:
        """The ``top_k`` chunks of the tenant's partition most similar to ``vector``.

        Only vectors of the query's dimension are compared: chunks embedded by another
        model live on in the partition but cannot be ranked against this query.
        """
        tenant_id, partition = resolve_partition(self.resolver, ctx)
        check_top_k(top_k)
        query = unit_vector(vector, what="query vector")
        dim = int(query.shape[0])
        in_partition = (
            memory_chunks.c.tenant_id == tenant_id,
            memory_chunks.c.partition == partition,
        )
        async with self.db.begin() as conn:
            candidates = (
                await conn.execute(
                    select(memory_chunks.c.id, memory_chunks.c.vector).where(
                        *in_partition, memory_chunks.c.dim == dim
                    )
                )
            ).all()
            if not candidates:
                return []
            ids = [row.id for row in candidates]
            matrix = np.frombuffer(
                b"".join(row.vector for row in candidates), dtype=np.float32
            ).reshape(len(candidates), dim)
            best = top_indices(matrix @ query, top_k)
            scores = {ids[i]: float(s) for i, s in best}
            details = (
                await conn.execute(
                    select(
                        memory_chunks.c.id,
                        memory_chunks.c.source,
                        memory_chunks.c.chunk,
                        memory_chunks.c.text,
                        memory_chunks.c.metadata,
                    ).where(*in_partition, memory_chunks.c.id.in_(list(scores)))
                )
            ).all()
        by_id = {row.id: row for row in details}
        return [
            Match(
                id=chunk_id,
                source=by_id[chunk_id].source,
                chunk=by_id[chunk_id].chunk,
                text=by_id[chunk_id].text,
                score=score,
                metadata=_metadata(by_id[chunk_id].metadata),
            )
            for chunk_id, score in scores.items()
        ]

    async def delete_source(self, ctx: TenantContext, source: str) -> int:
        """Delete every chunk of ``source`` the tenant has, whatever its partition."""
        tenant_id, _ = resolve_partition(self.resolver, ctx)
        check_source(source)
        async with self.db.begin() as conn:
            result = await conn.execute(
                delete(memory_chunks).where(
                    memory_chunks.c.tenant_id == tenant_id, memory_chunks.c.source == source
                )
            )
        return int(result.rowcount)

    async def purge(self, subject: TenantContext | str) -> None:
        """Delete every chunk the tenant has, in every partition."""
        tenant_id, _ = resolve_partition(self.resolver, subject)
        async with self.db.begin() as conn:
            await purge_tenant(conn, tenant_id)


async def purge_tenant(conn: AsyncConnection, tenant_id: str) -> int:
    """Delete every chunk of a tenant inside the caller's deletion transaction.

    Returns:
        How many chunks were deleted.
    """
    result = await conn.execute(delete(memory_chunks).where(memory_chunks.c.tenant_id == tenant_id))
    return int(result.rowcount)


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


def _metadata(raw: Any) -> dict[str, MetadataValue]:
    return dict(raw) if isinstance(raw, dict) else {}
