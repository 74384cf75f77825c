"""authorisation policy (casbin_rule), default roles for existing tenants

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 11:30:00.000000

The table is exactly the model of ``casbin_async_sqlalchemy_adapter`` (which must
never create it itself). The two indexes serve ``core.authz``'s filtered loads: the
tenant is ``v1`` of a ``p`` rule and ``v2`` of a ``g`` rule.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# A frozen copy of core.authz.DEFAULT_PERMISSIONS as of this revision: tenants created
# before it get the same default roles as those seeded at creation from now on.
_DEFAULTS = {
    'owner': ('*', 'audit.*', 'roles.*'),
    'admin': ('*', 'audit.*', 'roles.*'),
    'member': ('*',),
    'guest': ('knowledge.search', 'budget.status'),
}


def upgrade() -> None:
    casbin_rule = op.create_table('casbin_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ptype', sa.String(length=255), nullable=True),
    sa.Column('v0', sa.String(length=255), nullable=True),
    sa.Column('v1', sa.String(length=255), nullable=True),
    sa.Column('v2', sa.String(length=255), nullable=True),
    sa.Column('v3', sa.String(length=255), nullable=True),
    sa.Column('v4', sa.String(length=255), nullable=True),
    sa.Column('v5', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_casbin_rule'))
    )
    with op.batch_alter_table('casbin_rule', schema=None) as batch_op:
        batch_op.create_index('ix_casbin_rule_ptype_v1', ['ptype', 'v1'], unique=False)
        batch_op.create_index('ix_casbin_rule_ptype_v2', ['ptype', 'v2'], unique=False)

    tenant_ids = op.get_bind().execute(sa.text('SELECT id FROM tenants ORDER BY id')).scalars()
    rows = [
        {'ptype': 'p', 'v0': f'role:{role}', 'v1': tenant_id, 'v2': pattern, 'v3': 'use'}
        for tenant_id in tenant_ids
        for role, patterns in _DEFAULTS.items()
        for pattern in patterns
    ]
    if rows:
        op.bulk_insert(casbin_rule, rows)


def downgrade() -> None:
    with op.batch_alter_table('casbin_rule', schema=None) as batch_op:
        batch_op.drop_index('ix_casbin_rule_ptype_v2')
        batch_op.drop_index('ix_casbin_rule_ptype_v1')

    op.drop_table('casbin_rule')
