"""tenants, plans, usage, runs

Revision ID: 0001
Revises:
Create Date: 2026-11-28 10:22:19.215599
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkpoints',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('messages', sa.Text(), nullable=False),
    sa.Column('usage', sa.JSON(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_checkpoints'))
    )
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoints_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('monthly_usage',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_microcents', sa.BigInteger(), nullable=False),
    sa.Column('tool_calls', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'period', name=op.f('pk_monthly_usage'))
    )
    op.create_table('plans',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('monthly_tokens', sa.BigInteger(), nullable=False),
    sa.Column('monthly_cost_microcents', sa.BigInteger(), nullable=False),
    sa.Column('monthly_tool_calls', sa.BigInteger(), nullable=False),
    sa.Column('run_tokens', sa.BigInteger(), nullable=False),
    sa.Column('run_tool_calls', sa.Integer(), nullable=False),
    sa.Column('run_walltime_ms', sa.BigInteger(), nullable=False),
    sa.Column('run_cost_microcents', sa.BigInteger(), nullable=False),
    sa.Column('capabilities', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('monthly_tokens >= 0 AND monthly_cost_microcents >= 0 AND monthly_tool_calls >= 0 AND run_tokens >= 0 AND run_tool_calls >= 0 AND run_walltime_ms >= 0 AND run_cost_microcents >= 0', name=op.f('ck_plans_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans'))
    )
    op.create_table('runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('principal_id', sa.String(length=200), nullable=False),
    sa.Column('principal_kind', sa.String(length=16), nullable=False),
    sa.Column('initiator', sa.String(length=16), nullable=False),
    sa.Column('correlation_id', sa.String(length=200), nullable=True),
    sa.Column('conversation_id', sa.String(length=300), nullable=True),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('tool_calls', sa.Integer(), nullable=False),
    sa.Column('cost_microcents', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'running', 'halted', 'completed', 'failed', 'refused')", name=op.f('ck_runs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_tenant_created', ['tenant_id', 'created_at'], unique=False)
        batch_op.create_index('ix_runs_tenant_status', ['tenant_id', 'status'], unique=False)

    op.create_table('tool_effects',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('step_id', sa.String(length=200), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('capability', sa.String(length=200), nullable=False),
    sa.Column('result', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'step_id', name=op.f('pk_tool_effects'))
    )
    with op.batch_alter_table('tool_effects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tool_effects_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('usage_ledger',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('step_id', sa.String(length=200), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('retried', sa.Boolean(), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=True),
    sa.Column('price_version', sa.String(length=32), nullable=True),
    sa.Column('reserved_tokens', sa.BigInteger(), nullable=False),
    sa.Column('reserved_cost_microcents', sa.BigInteger(), nullable=False),
    sa.Column('reserved_tool_calls', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cache_read_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cache_write_tokens', sa.BigInteger(), nullable=False),
    sa.Column('tool_calls', sa.Integer(), nullable=False),
    sa.Column('cost_microcents', sa.BigInteger(), nullable=False),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('model', 'tool')", name=op.f('ck_usage_ledger_kind')),
    sa.CheckConstraint("status IN ('reserved', 'settled', 'released')", name=op.f('ck_usage_ledger_status')),
    sa.PrimaryKeyConstraint('run_id', 'step_id', name=op.f('pk_usage_ledger'))
    )
    with op.batch_alter_table('usage_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_usage_ledger_tenant_period', ['tenant_id', 'period'], unique=False)

    op.create_table('tenants',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('plan_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f('ck_tenants_status')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_tenants_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants'))
    )


def downgrade() -> None:
    op.drop_table('tenants')
    with op.batch_alter_table('usage_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_ledger_tenant_period')

    op.drop_table('usage_ledger')
    with op.batch_alter_table('tool_effects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tool_effects_tenant_id'))

    op.drop_table('tool_effects')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_tenant_status')
        batch_op.drop_index('ix_runs_tenant_created')

    op.drop_table('runs')
    op.drop_table('plans')
    op.drop_table('monthly_usage')
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoints_tenant_id'))

    op.drop_table('checkpoints')
