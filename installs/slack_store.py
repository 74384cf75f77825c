"""Slack installations (workspace and org-wide) with every token encrypted at rest.

This implements slack_sdk's ``AsyncInstallationStore`` on Tenantry's own tables and
engine instead of subclassing ``AsyncSQLAlchemyInstallationStore``, whose shape it
keeps (one row per installation, one per bot, the latest wins) but which cannot be
made to encrypt cleanly: it builds entities through a hard-coded class, decides
which bot token is newer by comparing stored values (meaningless for ciphertext,
which differs on every encryption), writes the installation and its bot in two
transactions, declares token columns too narrow for ciphertext on PostgreSQL, and
invites ``create_tables()`` at run time. Our tables come from migration 0006.

Encrypted: bot and user tokens, their refresh tokens, and the incoming webhook URL
(anyone holding it can post to the channel). Everything else (ids, names, scopes) is
stored in clear, because lookups and operators need it. Org-wide installs are stored
with ``team_id`` NULL and found with ``is_enterprise_install=True``, as slack_sdk does.

The store's methods run module-level transaction functions through ``Database.run``;
``save_installation`` and ``delete_all`` also join other transactions (installing,
uninstalling). Tokens are encrypted and decrypted inside the transaction function,
in its worker thread, not on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from logging import Logger
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    desc,
    select,
    update,
)
from sqlalchemy.engine import Connection

from core.crypto import CryptoError, Keyring
from core.db.engine import Database, reads
from core.db.schema import UTCDateTime, metadata
from core.logs import log
from installs.links import utc

ROTATE_BATCH = 500
INSTALLATION_SECRETS = (
    "bot_token", "bot_refresh_token", "user_token", "user_refresh_token", "incoming_webhook_url",
)
BOT_SECRETS = ("bot_token", "bot_refresh_token")
_TIMES = ("installed_at", "bot_token_expires_at", "user_token_expires_at")


def _workspace_columns() -> list[Column[Any]]:
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("app_id", String(32)),
        Column("enterprise_id", String(32)),
        Column("enterprise_name", String(200)),
        Column("team_id", String(32)),
        Column("team_name", String(200)),
        Column("bot_token", Text),
        Column("bot_id", String(32)),
        Column("bot_user_id", String(32)),
        Column("bot_scopes", String(1000)),
        Column("bot_refresh_token", Text),
        Column("bot_token_expires_at", UTCDateTime),
        Column("is_enterprise_install", Boolean, nullable=False),
        Column("installed_at", UTCDateTime, nullable=False),
    ]


slack_installations = Table(
    "slack_installations",
    metadata,
    *_workspace_columns(),
    Column("enterprise_url", String(200)),
    Column("user_id", String(32), nullable=False),
    Column("user_token", Text),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", Text),
    Column("user_token_expires_at", UTCDateTime),
    Column("incoming_webhook_url", Text),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("token_type", String(32)),
    Index("ix_slack_installations_key", "enterprise_id", "team_id", "user_id", "installed_at"),
)

slack_bots = Table(
    "slack_bots",
    metadata,
    *_workspace_columns(),
    Index("ix_slack_bots_key", "enterprise_id", "team_id", "installed_at"),
)


class SlackInstallationStore(AsyncInstallationStore):
    """Bolt's installation store, on the app database, encrypting tokens with the keyring.

    Args:
        db: The app database (its tables made by migration 0006).
        keyring: Encrypts on save, decrypts on find; its newest key encrypts.
    """

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keyring = keyring

    @property
    def logger(self) -> Logger:
        """The logger slack_sdk and Bolt write this store's messages to."""
        return logging.getLogger(__name__)

    async def async_save(self, installation: Installation) -> None:
        """Store an installation and its bot in one transaction, tokens encrypted."""
        await self.db.run(save_installation, self.keyring, installation)

    async def async_save_bot(self, bot: Bot) -> None:
        """Store a bot installation (token rotation saves these), tokens encrypted."""
        await self.db.run(_save_bot, self.keyring, bot)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """The latest bot with a token in the workspace, or the org for an org-wide install."""
        team = None if is_enterprise_install else team_id
        return await self.db.run(_find_bot, self.keyring, enterprise_id, team)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The latest installation (of ``user_id`` if given), with the latest bot token.

        A user's own installation may predate the workspace's current bot token, so the
        bot fields come from the newest bot row, as slack_sdk's stores do.
        """
        team = None if is_enterprise_install else team_id
        return await self.db.run(_find_installation, self.keyring, enterprise_id, team, user_id)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget the bot tokens of a workspace or org (``tokens_revoked`` for the bot)."""
        await self.db.run(_delete, slack_bots, enterprise_id, team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Forget the installations of a workspace or org, or only those of one user."""
        await self.db.run(_delete, slack_installations, enterprise_id, team_id, user_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget every token of a workspace or org (``app_uninstalled``), in one transaction."""
        await self.db.run(delete_all, enterprise_id, team_id)

    async def rotate_all(self, keyring: Keyring | None = None) -> int:
        """Re-encrypt every stored token under the newest key (``tenantry keys rotate``).

        Batches, each its own transaction; a row is updated only if its ciphertexts are
        still the ones read, so a concurrent save is never overwritten with older
        tokens. Safe to run again after an interruption.

        Args:
            keyring: The keyring to rotate under; the store's own by default.

        Returns:
            How many tokens were re-encrypted.

        Raises:
            CryptoError: after every readable row was re-encrypted, if some tokens
                cannot be decrypted with any key; the message names their rows.
        """
        ring = keyring or self.keyring
        rotated = 0
        unreadable: list[str] = []
        for table, secrets in ((slack_installations, INSTALLATION_SECRETS),
                               (slack_bots, BOT_SECRETS)):
            after: int | None = 0
            while after is not None:
                count, failed, after = await self.db.run(
                    _rotate_batch, ring, table, secrets, after
                )
                rotated += count
                unreadable += failed
        if unreadable:
            raise CryptoError(
                f"re-encrypted {rotated} Slack tokens; rows {', '.join(unreadable)} cannot be "
                "decrypted with any configured key"
            )
        return rotated


def _sealed(keyring: Keyring, table: Table, values: Mapping[str, Any],
            secrets: tuple[str, ...]) -> dict[str, Any]:
    row = {name: value for name, value in values.items() if name in table.c and name != "id"}
    for name in secrets:
        if row.get(name) is not None:
            row[name] = keyring.encrypt(row[name])
    return row


def _opened(keyring: Keyring, row: Any, secrets: tuple[str, ...]) -> dict[str, Any]:
    values = dict(row._mapping)
    del values["id"]
    for name in secrets:
        if values.get(name) is not None:
            values[name] = keyring.decrypt(values[name])
    for name in _TIMES:
        if isinstance(values.get(name), datetime):
            values[name] = utc(values[name])
    return values


def _upsert(conn: Connection, table: Table, row: dict[str, Any]) -> None:
    """Insert, or update the row of the same install moment (a token refresh)."""
    keys = ("enterprise_id", "team_id", "installed_at") + (
        ("user_id",) if "user_id" in table.c else ()
    )
    match = [table.c[name] == row[name] for name in keys]
    existing = conn.scalar(select(table.c.id).where(*match).limit(1))
    if existing is None:
        conn.execute(table.insert().values(**row))
    else:
        conn.execute(update(table).where(table.c.id == existing).values(**row))


def save_installation(conn: Connection, keyring: Keyring, installation: Installation) -> None:
    """Store an installation and its bot, tokens encrypted."""
    _upsert(conn, slack_installations, _sealed(
        keyring, slack_installations, installation.to_dict(), INSTALLATION_SECRETS
    ))
    if installation.bot_token is not None:
        _save_bot(conn, keyring, installation.to_bot())


def _save_bot(conn: Connection, keyring: Keyring, bot: Bot) -> None:
    _upsert(conn, slack_bots, _sealed(keyring, slack_bots, bot.to_dict(), BOT_SECRETS))


@reads
def _find_bot(
    conn: Connection, keyring: Keyring, enterprise_id: str | None, team_id: str | None
) -> Bot | None:
    c = slack_bots.c
    row = conn.execute(
        select(slack_bots)
        .where(c.enterprise_id == enterprise_id, c.team_id == team_id, c.bot_token.is_not(None))
        .order_by(desc(c.installed_at)).limit(1)
    ).first()
    return None if row is None else Bot(**_opened(keyring, row, BOT_SECRETS))


@reads
def _find_installation(
    conn: Connection, keyring: Keyring, enterprise_id: str | None, team_id: str | None,
    user_id: str | None,
) -> Installation | None:
    c = slack_installations.c
    where = [c.enterprise_id == enterprise_id, c.team_id == team_id]
    if user_id is not None:
        where.append(c.user_id == user_id)
    row = conn.execute(
        select(slack_installations).where(*where).order_by(desc(c.installed_at)).limit(1)
    ).first()
    if row is None:
        return None
    installation = Installation(**_opened(keyring, row, INSTALLATION_SECRETS))
    if user_id is None and installation.bot_token is not None:
        return installation
    bot = _find_bot(conn, keyring, enterprise_id, team_id)
    if bot is not None:
        for name in ("bot_id", "bot_user_id", "bot_token", "bot_scopes", "bot_refresh_token",
                     "bot_token_expires_at"):
            setattr(installation, name, getattr(bot, name))
    return installation


def _delete(
    conn: Connection, table: Table, enterprise_id: str | None, team_id: str | None,
    user_id: str | None = None,
) -> None:
    where = [table.c.enterprise_id == enterprise_id, table.c.team_id == team_id]
    if user_id is not None:
        where.append(table.c.user_id == user_id)
    conn.execute(delete(table).where(*where))


def delete_all(conn: Connection, enterprise_id: str | None, team_id: str | None) -> None:
    """Forget every token of a workspace, or of an org's org-wide install (``team_id=None``)."""
    for table in (slack_bots, slack_installations):
        _delete(conn, table, enterprise_id, team_id)


def _rotate_batch(
    conn: Connection, keyring: Keyring, table: Table, secrets: tuple[str, ...], after: int
) -> tuple[int, list[str], int | None]:
    """Re-encrypt one batch; what it rotated, what it could not read, where to go on."""
    columns = [table.c.id, *(table.c[name] for name in secrets)]
    rows = conn.execute(
        select(*columns).where(table.c.id > after).order_by(table.c.id).limit(ROTATE_BATCH)
    ).all()
    rotated, unreadable = 0, []
    for row in rows:
        old = {name: getattr(row, name) for name in secrets if getattr(row, name) is not None}
        try:
            fresh = {name: keyring.rotate(value) for name, value in old.items()}
        except CryptoError:
            unreadable.append(f"{table.name}#{row.id}")
            log.warning("slack token unreadable", table=table.name, row=row.id)
            continue
        result = conn.execute(
            update(table)
            .where(table.c.id == row.id, *(table.c[name] == value for name, value in old.items()))
            .values(**fresh)
        )
        rotated += len(fresh) * result.rowcount
    return rotated, unreadable, rows[-1].id if len(rows) == ROTATE_BATCH else None
