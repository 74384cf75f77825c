"""The ``digests`` table: one row per schedule, owned by its tenant."""

from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, Column, Index, String, Table, Text

from core.db.schema import UTCDateTime, metadata

MAX_NAME = 80
MAX_CRON = 100
MAX_PROMPT = 4000
"""A digest's prompt is an instruction, not a document: documents go to knowledge."""

digests = Table(
    "digests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("name", String(MAX_NAME), nullable=False),
    Column("cron", String(MAX_CRON), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("destination", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("paused_reason", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_fired_at", UTCDateTime),
    CheckConstraint("status IN ('active', 'paused')", name="status"),
    Index("ix_digests_tenant_name", "tenant_id", "name", unique=True),
)
