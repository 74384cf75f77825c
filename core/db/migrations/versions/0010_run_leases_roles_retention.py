"""run leases and vouched roles, plan retention

Revision ID: 0010
Revises: 0009

A run records the roles the platform vouched for when it was asked (a Slack admin's
flags, ``tenantry run --role``), so a resume acts with the same rights, and a lease
(owner and expiry) that a process takes before it executes the run, so that two
processes never execute one run at once. A plan says how many days run transcripts
and conversation turns are kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


_ADDED = (
    ("runs", sa.Column("granted_roles", sa.JSON(), nullable=False, server_default="[]")),
    ("runs", sa.Column("lease_owner", sa.String(length=64), nullable=True)),
    ("runs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)),
    ("plans", sa.Column("retention_days", sa.Integer(), nullable=False, server_default="90")),
)


def upgrade() -> None:
    for table, column in _ADDED:
        op.add_column(table, column)


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch rebuild of ``plans``
    # would drop a table that ``tenants`` refers to.
    for table, column in reversed(_ADDED):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
