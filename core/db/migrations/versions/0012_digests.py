"""digests: per-tenant schedules whose firings run the agent and post the answer

Revision ID: 0012_digests
Revises: 0011

A digest is a cron expression read in the tenant's time zone, a prompt and a
destination (a Slack channel or a Teams conversation, as JSON). ``last_fired_at`` is
the scheduled time of the latest firing handled; moving it forward is how one of
several clocks claims a firing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_digests"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('digests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('cron', sa.String(length=100), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('destination', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('paused_reason', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_fired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('active', 'paused')", name=op.f('ck_digests_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digests'))
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.create_index('ix_digests_tenant_name', ['tenant_id', 'name'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_index('ix_digests_tenant_name')
    op.drop_table('digests')
