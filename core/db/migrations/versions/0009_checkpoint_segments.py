"""checkpoint segments

Revision ID: 0009
Revises: 0008

A checkpoint stored its run's whole history, rewritten after every step: a run of n
steps wrote O(n^2) bytes. The settled part of the history now goes to
``checkpoint_segments``, each message once, and ``checkpoints.messages`` keeps only
the newest few. Existing checkpoints are valid as they are: no segments, and all of
their history in ``messages``.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "checkpoints",
        sa.Column("segments", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_table(
        "checkpoint_segments",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("messages", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_checkpoint_segments")),
    )
    op.create_index(
        op.f("ix_checkpoint_segments_tenant_id"), "checkpoint_segments", ["tenant_id"],
        unique=False,
    )


def downgrade() -> None:
    # Fold each checkpoint's segments back into its messages before they go.
    bind = op.get_bind()
    heads = sa.table(
        "checkpoints", sa.column("run_id"), sa.column("tenant_id"), sa.column("messages"),
        sa.column("digest"), sa.column("segments"),
    )
    pieces = sa.table(
        "checkpoint_segments", sa.column("run_id"), sa.column("tenant_id"), sa.column("seq"),
        sa.column("messages"),
    )
    for run_id, tenant_id, tail, count in bind.execute(
        sa.select(heads.c.run_id, heads.c.tenant_id, heads.c.messages, heads.c.segments)
        .where(heads.c.segments > 0)
    ).all():
        stored = bind.execute(
            sa.select(pieces.c.messages)
            .where(pieces.c.run_id == run_id, pieces.c.tenant_id == tenant_id,
                   pieces.c.seq < count)
            .order_by(pieces.c.seq)
        ).scalars().all()
        items = [array.strip()[1:-1] for array in [*stored, tail] if array.strip() != "[]"]
        whole = "[" + ",".join(items) + "]"
        bind.execute(
            heads.update().where(heads.c.run_id == run_id).values(
                messages=whole, digest=hashlib.sha256(whole.encode()).hexdigest(), segments=0,
            )
        )
    op.drop_index(op.f("ix_checkpoint_segments_tenant_id"), table_name="checkpoint_segments")
    op.drop_table("checkpoint_segments")
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("segments")
