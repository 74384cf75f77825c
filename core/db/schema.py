"""Tables of the app database.

Every tenant-owned table carries ``tenant_id``, and every query on it filters by the
context's tenant. Money is integer microcents, time is UTC. The schema is written with
SQLAlchemy Core because the hot paths are single conditional statements (the monthly
ledger, the audit head) that an ORM would only hide.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Money = BigInteger
UTCDateTime = DateTime(timezone=True)


@overload
def as_utc(moment: datetime) -> datetime: ...


@overload
def as_utc(moment: None) -> None: ...


def as_utc(moment: datetime | None) -> datetime | None:
    """A ``UTCDateTime`` value as read back: SQLite hands it back naive, written in UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

plans = Table(
    "plans",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("monthly_tokens", BigInteger, nullable=False),
    Column("monthly_cost_microcents", Money, nullable=False),
    Column("monthly_tool_calls", BigInteger, nullable=False),
    Column("run_tokens", BigInteger, nullable=False),
    Column("run_tool_calls", Integer, nullable=False),
    Column("run_walltime_ms", BigInteger, nullable=False),
    Column("run_cost_microcents", Money, nullable=False),
    Column("capabilities", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("retention_days", Integer, nullable=False, server_default="90"),
    CheckConstraint(
        "monthly_tokens >= 0 AND monthly_cost_microcents >= 0 AND monthly_tool_calls >= 0"
        " AND run_tokens >= 0 AND run_tool_calls >= 0 AND run_walltime_ms >= 0"
        " AND run_cost_microcents >= 0",
        name="non_negative",
    ),
)

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan_id", String(64), ForeignKey("plans.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("features", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("status IN ('active', 'suspended')", name="status"),
)

monthly_usage = Table(
    "monthly_usage",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("tokens", BigInteger, nullable=False),
    Column("cost_microcents", Money, nullable=False),
    Column("tool_calls", BigInteger, nullable=False),
)

usage_ledger = Table(
    "usage_ledger",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("step_id", String(200), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("status", String(10), nullable=False),
    Column("retried", Boolean, nullable=False),
    Column("model", String(100)),
    Column("price_version", String(32)),
    Column("reserved_tokens", BigInteger, nullable=False),
    Column("reserved_cost_microcents", Money, nullable=False),
    Column("reserved_tool_calls", Integer, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("tool_calls", Integer, nullable=False),
    Column("cost_microcents", Money, nullable=False),
    Column("response", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime),
    CheckConstraint("kind IN ('model', 'tool')", name="kind"),
    CheckConstraint("status IN ('reserved', 'settled', 'released')", name="status"),
    Index("ix_usage_ledger_tenant_period", "tenant_id", "period"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("principal_id", String(200), nullable=False),
    Column("principal_kind", String(16), nullable=False),
    Column("initiator", String(16), nullable=False),
    Column("correlation_id", String(200)),
    Column("conversation_id", String(300)),
    Column("model", String(100), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("answer", Text),
    Column("detail", JSON, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("tool_calls", Integer, nullable=False),
    Column("cost_microcents", Money, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("granted_roles", JSON, nullable=False, server_default="[]"),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UTCDateTime),
    CheckConstraint(
        "status IN ('queued', 'running', 'halted', 'completed', 'failed', 'refused')",
        name="status",
    ),
    Index("ix_runs_tenant_created", "tenant_id", "created_at"),
    Index("ix_runs_tenant_status", "tenant_id", "status"),
)

checkpoints = Table(
    # A run's latest checkpoint. Its history is the messages of its first ``segments``
    # rows in checkpoint_segments, then ``messages``: the newest few, which may still
    # change and are rewritten by every checkpoint. ``digest`` is the SHA-256 of
    # ``messages``.
    "checkpoints",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("step_index", Integer, nullable=False),
    Column("messages", Text, nullable=False),
    Column("usage", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("segments", Integer, nullable=False, server_default="0"),
)

checkpoint_segments = Table(
    # The settled part of a checkpoint's history, appended as it grows: each row a JSON
    # array of the messages that settled since the one before, written once.
    "checkpoint_segments",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("messages", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

tool_effects = Table(
    "tool_effects",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("step_id", String(200), primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("capability", String(200), nullable=False),
    Column("result", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


casbin_rule = Table(
    # pycasbin's rule table, as its SQLAlchemy adapters define it (migration 0004): the
    # tenant is ``v1`` of a ``p`` rule and ``v2`` of a ``g`` rule (``core.authz``).
    "casbin_rule",
    metadata,
    Column("id", Integer, primary_key=True),
    *(Column(name, String(255)) for name in ("ptype", "v0", "v1", "v2", "v3", "v4", "v5")),
    Index("ix_casbin_rule_ptype_v1", "ptype", "v1"),
    Index("ix_casbin_rule_ptype_v2", "ptype", "v2"),
)
