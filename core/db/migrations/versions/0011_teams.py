"""teams tenant links, conversation references, activities seen; link purposes

Revision ID: 0011
Revises: 0010

An Entra (Microsoft 365) tenant is recorded when it installs the Teams app and linked
to a tenant when one of its admins redeems a link code. Link codes share
``install_link_nonces`` with Slack install links; each nonce now records the purpose
it was issued for, and the rows from before were all Slack install links.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('teams_tenants',
    sa.Column('entra_tenant_id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('linked_by', sa.String(length=200), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'active', 'revoked')", name=op.f('ck_teams_tenants_status')),
    sa.CheckConstraint("status <> 'active' OR tenant_id IS NOT NULL", name=op.f('ck_teams_tenants_tenant')),
    sa.PrimaryKeyConstraint('entra_tenant_id', name=op.f('pk_teams_tenants'))
    )
    with op.batch_alter_table('teams_tenants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_teams_tenants_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('teams_conversations',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('conversation_id', sa.String(length=512), nullable=False),
    sa.Column('entra_tenant_id', sa.String(length=64), nullable=False),
    sa.Column('reference', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'conversation_id', name=op.f('pk_teams_conversations'))
    )
    with op.batch_alter_table('teams_conversations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_teams_conversations_entra_tenant_id'), ['entra_tenant_id'], unique=False)

    op.create_table('teams_activities',
    sa.Column('entra_tenant_id', sa.String(length=64), nullable=False),
    sa.Column('conversation_id', sa.String(length=512), nullable=False),
    sa.Column('activity_id', sa.String(length=256), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('entra_tenant_id', 'conversation_id', 'activity_id', name=op.f('pk_teams_activities'))
    )
    with op.batch_alter_table('teams_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_teams_activities_seen_at'), ['seen_at'], unique=False)

    op.add_column('install_link_nonces', sa.Column(
        'purpose', sa.String(length=64), nullable=False,
        server_default='tenantry/slack-install-link/v1'))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0010.
    op.execute("ALTER TABLE install_link_nonces DROP COLUMN purpose")
    for table, column in (('teams_activities', 'seen_at'),
                          ('teams_conversations', 'entra_tenant_id'),
                          ('teams_tenants', 'tenant_id')):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_{column}'))
        op.drop_table(table)
