"""api_idempotency: the HTTP API's Idempotency-Key, per tenant, with its request's digest

Revision ID: 0014_api_idempotency
Revises: 0013_api_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_api_idempotency"
down_revision = "0013_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_idempotency",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="pk_api_idempotency"),
    )


def downgrade() -> None:
    op.drop_table("api_idempotency")
