"""Apply the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from core.db.engine import Database, reads
from core.errors import ConfigurationError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config bound to a connection, with no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration shipped with this version of Tenantry."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database schema up to ``revision``.

    Raises:
        ConfigurationError: the database was migrated by a newer version of Tenantry.
    """
    await db.run(_upgrade, revision)


def _upgrade(conn: Connection, revision: str) -> None:
    current = _revision(conn)
    if current is not None and current not in _shipped():
        raise _newer(current)
    command.upgrade(alembic_config(conn), revision)


def _shipped() -> set[str]:
    return {script.revision for script in
            ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _newer(current: str) -> ConfigurationError:
    return ConfigurationError(
        f"the database is at migration {current}, newer than this version of "
        f"Tenantry (at {head_revision()}): run the version that migrated it"
    )


@reads
def _revision(conn: Connection) -> str | None:
    if not conn.dialect.has_table(conn, "alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


async def current_revision(db: Database) -> str | None:
    """The revision the database is at, or ``None`` before the first migration."""
    return await db.run(_revision)


async def require_head(db: Database) -> None:
    """Refuse a database at another migration than this code's.

    Code and schema must agree before anything reads or writes: a table this version
    expects and the database lacks would otherwise fail in the middle of a run.

    Raises:
        ConfigurationError: naming both revisions and what to do.
    """
    head = head_revision()
    current = await current_revision(db)
    if current == head:
        return
    if current is not None and current not in _shipped():
        raise _newer(current)
    raise ConfigurationError(
        f"the database is at migration {current or 'none (empty)'} and this version of "
        f"Tenantry needs {head}: run `tenantry db upgrade`"
    )
