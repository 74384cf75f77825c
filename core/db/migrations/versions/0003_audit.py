"""per-tenant verifiable audit log

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00.000000

The events and checkpoints tables are append-only in the database itself: triggers
refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), so neither a bug nor a stray
statement can rewrite history. The trigger SQL is written out here, not imported,
so this migration stays what it was when it shipped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_APPEND_ONLY = ('audit_events', 'audit_checkpoints')

_PG_FUNCTION = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: the audit log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _create_triggers(dialect: str) -> None:
    if dialect == 'postgresql':
        op.execute(_PG_FUNCTION)
        for table in _APPEND_ONLY:
            op.execute(
                f'CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} '
                'FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()'
            )
            op.execute(
                f'CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} '
                'FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()'
            )
    elif dialect == 'sqlite':
        for table in _APPEND_ONLY:
            for operation in ('UPDATE', 'DELETE'):
                op.execute(
                    f'CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} '
                    f"BEGIN SELECT RAISE(ABORT, '{operation} on {table} refused: the audit log "
                    "is append-only'); END"
                )
    else:
        raise NotImplementedError(f'no append-only triggers for dialect {dialect!r}')


def _drop_triggers(dialect: str) -> None:
    if dialect == 'postgresql':
        for table in _APPEND_ONLY:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_append_only ON {table}')
            op.execute(f'DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}')
        op.execute('DROP FUNCTION IF EXISTS audit_refuse_change()')
    else:
        for table in _APPEND_ONLY:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_no_update')
            op.execute(f'DROP TRIGGER IF EXISTS {table}_no_delete')


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('time', sa.String(length=32), nullable=False),
    sa.Column('fields', sa.Text(), nullable=False),
    sa.Column('leaf_hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_audit_events_seq_positive')),
    sa.PrimaryKeyConstraint('tenant_id', 'seq', name=op.f('pk_audit_events'))
    )
    op.create_table('audit_heads',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('compact_range', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('size >= 0', name=op.f('ck_audit_heads_size_non_negative')),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_audit_heads'))
    )
    op.create_table('audit_checkpoints',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root', sa.String(length=64), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('compact_range', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'size', name=op.f('pk_audit_checkpoints'))
    )
    op.create_table('audit_salts',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_audit_salts'))
    )
    _create_triggers(op.get_bind().dialect.name)


def downgrade() -> None:
    _drop_triggers(op.get_bind().dialect.name)
    op.drop_table('audit_salts')
    op.drop_table('audit_checkpoints')
    op.drop_table('audit_heads')
    op.drop_table('audit_events')
