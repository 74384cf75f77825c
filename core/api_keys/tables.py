"""The ``api_keys`` table: one row per key, owned by its tenant; never the key itself."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from core.db.schema import UTCDateTime, metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(12), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("principal_id", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Index("ix_api_keys_tenant", "tenant_id"),
)
