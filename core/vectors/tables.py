"""Tables of tenant memory, on the app's shared ``metadata``.

``memory_chunks`` holds the embedded vector store: one row per chunk, its unit vector
as raw little-endian float32 bytes. Searches filter by ``tenant_id`` and ``partition``,
deletions by the tenant alone, so a changed partition scheme can never strand a
tenant's rows beyond the reach of a purge. ``memory_partitions`` holds the revisions
that tell a process whether the vectors it keeps in memory are still current (see
``core.vectors.embedded``); its rows hold no content.

``conversation_turns`` is the conversation history keyed ``(tenant, principal,
conversation)``; the surrogate ``id`` orders turns and avoids a read-then-write to
number them, which concurrent appends would race on.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from core.db.schema import UTCDateTime, metadata

memory_chunks = Table(
    "memory_chunks",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("id", String(512), primary_key=True),
    Column("partition", String(200), nullable=False),
    Column("source", String(512), nullable=False),
    Column("chunk", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("dim", Integer, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("chunk >= 0", name="chunk_non_negative"),
    CheckConstraint("dim > 0", name="dim_positive"),
    Index("ix_memory_chunks_tenant_source", "tenant_id", "source"),
    Index("ix_memory_chunks_partition", "partition", "dim"),
)

memory_partitions = Table(
    "memory_partitions",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("partition", String(200), primary_key=True),
    Column("revision", BigInteger, nullable=False),
    CheckConstraint("revision > 0", name="revision_positive"),
)

conversation_turns = Table(
    "conversation_turns",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("tenant_id", String(64), nullable=False),
    Column("principal_id", String(200), nullable=False),
    Column("conversation_id", String(300), nullable=False),
    Column("role", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("role IN ('user', 'assistant')", name="role"),
    Index(
        "ix_conversation_turns_key", "tenant_id", "principal_id", "conversation_id", "id"
    ),
)
