"""Tables of the audit log, on the app's shared ``metadata``.

``audit_events`` and ``audit_checkpoints`` are append-only: migration 0003 adds
triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL). ``audit_heads``
holds one row per tenant, the lock every append of that tenant queues on and the
tree state it extends. A checkpoint keeps the tree state it signed, so the next one
is only signed after the events in between were rebuilt onto it. ``audit_salts`` is
the one deletable part: removing a tenant's salt is what makes its digests
unlinkable to content (crypto-shredding).

Event times and fields are stored as text, exactly as they were hashed, so that
verification re-encodes nothing a database could have normalised (time zones,
JSONB key order, float formatting).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, String, Table, Text

from core.db.schema import UTCDateTime, metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("run_id", String(36)),
    Column("event", String(64), nullable=False),
    Column("time", String(32), nullable=False),
    Column("fields", Text, nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    CheckConstraint("seq >= 1", name="seq_positive"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("compact_range", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("size >= 0", name="size_non_negative"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("note", Text, nullable=False),
    Column("compact_range", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

audit_salts = Table(
    "audit_salts",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("salt", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
