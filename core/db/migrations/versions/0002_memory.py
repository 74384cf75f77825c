"""tenant memory: embedded vector chunks and conversation history

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00.000000

``memory_chunks`` holds the embedded vector store (vectors as float32 bytes), and
``conversation_turns`` the history keyed (tenant, principal, conversation).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('memory_chunks',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=512), nullable=False),
    sa.Column('partition', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=512), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('chunk >= 0', name=op.f('ck_memory_chunks_chunk_non_negative')),
    sa.CheckConstraint('dim > 0', name=op.f('ck_memory_chunks_dim_positive')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_memory_chunks'))
    )
    with op.batch_alter_table('memory_chunks', schema=None) as batch_op:
        batch_op.create_index('ix_memory_chunks_tenant_source', ['tenant_id', 'source'], unique=False)
        batch_op.create_index('ix_memory_chunks_partition', ['partition', 'dim'], unique=False)

    op.create_table('conversation_turns',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('principal_id', sa.String(length=200), nullable=False),
    sa.Column('conversation_id', sa.String(length=300), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('user', 'assistant')", name=op.f('ck_conversation_turns_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_turns'))
    )
    with op.batch_alter_table('conversation_turns', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_turns_key', ['tenant_id', 'principal_id', 'conversation_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('conversation_turns', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_turns_key')

    op.drop_table('conversation_turns')
    with op.batch_alter_table('memory_chunks', schema=None) as batch_op:
        batch_op.drop_index('ix_memory_chunks_partition')
        batch_op.drop_index('ix_memory_chunks_tenant_source')

    op.drop_table('memory_chunks')
