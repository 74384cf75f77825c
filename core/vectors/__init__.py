"""Tenant memory as vectors: chunks of a tenant's documents, searchable in its partition only.

``base`` holds the contract (``VectorStore``, ``VectorItem``, ``Match``) and how a
tenant's partition is named and vetted; ``embedded`` keeps vectors in the app database,
``pinecone_store`` in a Pinecone namespace per tenant, and ``partition_cache`` keeps
the embedded store's partition matrices in memory between searches; ``embeddings``
turns text into vectors and ``chunking`` cuts documents into chunks; ``tables`` holds
the schema.
The Pinecone adapter is not imported here, so the embedded default never loads its SDK.
"""

from __future__ import annotations

from core.vectors.base import (
    Match,
    TenantPartitions,
    VectorAdmin,
    VectorItem,
    VectorStore,
    check_resolver,
)
from core.vectors.chunking import chunk_text
from core.vectors.embedded import EmbeddedVectorAdmin, EmbeddedVectorStore
from core.vectors.embeddings import Embedder, HashingEmbedder, WordLlamaEmbedder

__all__ = [
    "EmbeddedVectorAdmin",
    "EmbeddedVectorStore",
    "Embedder",
    "HashingEmbedder",
    "Match",
    "TenantPartitions",
    "VectorAdmin",
    "VectorItem",
    "VectorStore",
    "WordLlamaEmbedder",
    "check_resolver",
    "chunk_text",
]
