"""slack installations, oauth states, workspace links, install link nonces

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00.000000

The installation and bot tables keep the shape of slack_sdk's SQLAlchemy store, but
token columns are TEXT (they hold Fernet ciphertext, longer than any token) and
times are timezone-aware. ``slack_links`` uses '' rather than NULL in its key
columns, so the composite primary key works on both databases.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _workspace_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('app_id', sa.String(length=32), nullable=True),
        sa.Column('enterprise_id', sa.String(length=32), nullable=True),
        sa.Column('enterprise_name', sa.String(length=200), nullable=True),
        sa.Column('team_id', sa.String(length=32), nullable=True),
        sa.Column('team_name', sa.String(length=200), nullable=True),
        sa.Column('bot_token', sa.Text(), nullable=True),
        sa.Column('bot_id', sa.String(length=32), nullable=True),
        sa.Column('bot_user_id', sa.String(length=32), nullable=True),
        sa.Column('bot_scopes', sa.String(length=1000), nullable=True),
        sa.Column('bot_refresh_token', sa.Text(), nullable=True),
        sa.Column('bot_token_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('is_enterprise_install', sa.Boolean(), nullable=False),
        sa.Column('installed_at', sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table('slack_installations',
    *_workspace_columns(),
    sa.Column('enterprise_url', sa.String(length=200), nullable=True),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('user_token', sa.Text(), nullable=True),
    sa.Column('user_scopes', sa.String(length=1000), nullable=True),
    sa.Column('user_refresh_token', sa.Text(), nullable=True),
    sa.Column('user_token_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('incoming_webhook_url', sa.Text(), nullable=True),
    sa.Column('incoming_webhook_channel', sa.String(length=200), nullable=True),
    sa.Column('incoming_webhook_channel_id', sa.String(length=200), nullable=True),
    sa.Column('incoming_webhook_configuration_url', sa.String(length=200), nullable=True),
    sa.Column('token_type', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slack_installations'))
    )
    with op.batch_alter_table('slack_installations', schema=None) as batch_op:
        batch_op.create_index('ix_slack_installations_key', ['enterprise_id', 'team_id', 'user_id', 'installed_at'], unique=False)

    op.create_table('slack_bots',
    *_workspace_columns(),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slack_bots'))
    )
    with op.batch_alter_table('slack_bots', schema=None) as batch_op:
        batch_op.create_index('ix_slack_bots_key', ['enterprise_id', 'team_id', 'installed_at'], unique=False)

    op.create_table('slack_oauth_states',
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('expire_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('link_token', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_slack_oauth_states'))
    )
    with op.batch_alter_table('slack_oauth_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slack_oauth_states_expire_at'), ['expire_at'], unique=False)

    op.create_table('slack_links',
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('installer_user_id', sa.String(length=32), nullable=True),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f('ck_slack_links_status')),
    sa.CheckConstraint("enterprise_id <> '' OR team_id <> ''", name=op.f('ck_slack_links_key')),
    sa.PrimaryKeyConstraint('enterprise_id', 'team_id', name=op.f('pk_slack_links'))
    )
    with op.batch_alter_table('slack_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slack_links_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('install_link_nonces',
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_install_link_nonces'))
    )
    with op.batch_alter_table('install_link_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_install_link_nonces_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('install_link_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_install_link_nonces_tenant_id'))

    op.drop_table('install_link_nonces')
    with op.batch_alter_table('slack_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_links_tenant_id'))

    op.drop_table('slack_links')
    with op.batch_alter_table('slack_oauth_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_oauth_states_expire_at'))

    op.drop_table('slack_oauth_states')
    with op.batch_alter_table('slack_bots', schema=None) as batch_op:
        batch_op.drop_index('ix_slack_bots_key')

    op.drop_table('slack_bots')
    with op.batch_alter_table('slack_installations', schema=None) as batch_op:
        batch_op.drop_index('ix_slack_installations_key')

    op.drop_table('slack_installations')
