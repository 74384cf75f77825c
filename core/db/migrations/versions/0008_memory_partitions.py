"""memory partition revisions

Revision ID: 0008
Revises: 0007

``memory_partitions`` holds a revision per (tenant, partition) that every write to the
partition raises, so cached partition vectors can be checked against it. Partitions
that already hold chunks start at revision 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memory_partitions",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.String(length=200), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("revision > 0", name=op.f("ck_memory_partitions_revision_positive")),
        sa.PrimaryKeyConstraint("tenant_id", "partition", name=op.f("pk_memory_partitions")),
    )
    chunks = sa.table("memory_chunks", sa.column("tenant_id"), sa.column("partition"))
    partitions = sa.table(
        "memory_partitions", sa.column("tenant_id"), sa.column("partition"), sa.column("revision")
    )
    existing = sa.select(chunks.c.tenant_id, chunks.c.partition, sa.literal(1)).distinct()
    op.execute(
        partitions.insert().from_select(["tenant_id", "partition", "revision"], existing)
    )


def downgrade() -> None:
    op.drop_table("memory_partitions")
