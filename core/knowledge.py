"""A tenant's knowledge: documents chunked, embedded and searched in its own partition.

The service every caller goes through (the ``knowledge.search`` tool, the
``tenantry memory`` commands, a transport's file upload): it pairs an embedder with a
vector store and writes the audit entry of every deletion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai import RunContext

from core.audit import events
from core.audit.log import AuditLog
from core.context import TenantContext
from core.errors import InvalidInput
from core.tools import ToolBinding
from core.vectors.base import Match, VectorItem, VectorStore
from core.vectors.chunking import chunk_text
from core.vectors.embeddings import Embedder

MAX_DOCUMENT_CHARS = 2_000_000
MAX_DOCUMENT_BYTES = 4 * MAX_DOCUMENT_CHARS
"""The most bytes a document of ``MAX_DOCUMENT_CHARS`` can take in UTF-8."""
MAX_QUERY_CHARS = 2_000


class Knowledge:
    """Add, search and delete a tenant's documents."""

    def __init__(self, store: VectorStore, embedder: Embedder, audit: AuditLog) -> None:
        self.store = store
        self.embedder = embedder
        self.audit = audit

    async def add(self, ctx: TenantContext, source: str, text: str,
                  progress: Callable[[int], None] | None = None) -> int:
        """Chunk, embed and store one document; how many chunks were stored.

        Re-adding a source replaces its chunks at once: everything is embedded first,
        and searches see the old version until the whole new one is stored. The
        ingestion is audited by the source's digest, never its name or text.
        """
        if len(text) > MAX_DOCUMENT_CHARS:
            raise InvalidInput(f"document {source!r} is larger than {MAX_DOCUMENT_CHARS} chars")
        chunks = chunk_text(text)
        items: list[VectorItem] = []
        for start in range(0, len(chunks), 64):
            batch = chunks[start:start + 64]
            vectors = await self.embedder.embed(batch)
            items += [VectorItem(source=source, chunk=start + i, text=chunk, vector=vectors[i])
                      for i, chunk in enumerate(batch)]
            if progress is not None:
                progress(len(batch))
        stored = await self.store.replace_source(ctx, source, items)
        await self.audit.record(ctx.tenant_id, events.DOCUMENT_INGESTED, {
            "principal": ctx.principal_id,
            "source_digest": await self.audit.digest(ctx.tenant_id, source),
            "chunks": stored,
        })
        return stored

    async def search(self, ctx: TenantContext, query: str, top_k: int = 5) -> list[Match]:
        """The tenant's chunks closest to ``query``, best first."""
        query = query.strip()
        if not query:
            raise InvalidInput("a search needs a query")
        vectors = await self.embedder.embed([query[:MAX_QUERY_CHARS]])
        return await self.store.query(ctx, vectors[0], max(1, min(top_k, 20)))

    async def delete(self, ctx: TenantContext, source: str) -> int:
        """Delete every chunk of ``source`` for good, and audit it."""
        removed = await self.store.delete_source(ctx, source)
        await self.audit.record(ctx.tenant_id, events.MEMORY_DELETED, {
            "principal": ctx.principal_id,
            "source_digest": await self.audit.digest(ctx.tenant_id, source),
            "chunks": removed,
        }, run_id=None)
        return removed


@dataclass
class KnowledgeSearch:
    """``knowledge.search``: search this tenant's documents."""

    knowledge: Knowledge
    name: str = "knowledge.search"
    description: str = (
        "Search this workspace's own documents and return the most relevant passages with "
        "their source."
    )

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        """Every run in scope gets it; a search reaches the run's tenant only."""
        return ToolBinding(capability=self.name, description=self.description,
                           function=self.knowledge_search)

    async def knowledge_search(self, ctx: RunContext[TenantContext], query: str,
                               top_k: int = 5) -> list[dict[str, Any]]:
        """Passages of this workspace's documents that match the query.

        Args:
            query: What to look for.
            top_k: How many passages, 1 to 20.
        """
        matches = await self.knowledge.search(ctx.deps, query, top_k)
        return [{"source": m.source, "score": round(m.score, 3), "text": m.text[:800]}
                for m in matches]
