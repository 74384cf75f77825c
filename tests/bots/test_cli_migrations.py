"""Every command, and the server, refuse a database at another migration than the code's."""

from __future__ import annotations

import asyncio

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bots.cli import cli
from core.db.engine import Database
from core.db.migrate import alembic_config, head_revision

HEAD = head_revision()
_head_script = ScriptDirectory.from_config(alembic_config()).get_revision(HEAD)
assert _head_script is not None and isinstance(_head_script.down_revision, str)
OLDER = _head_script.down_revision
"""The migration before the newest (revision ids are not all numbers: ``0012_digests``)."""


async def _set_revision(url: str, revision: str | None) -> None:
    def write(conn: Connection) -> None:
        if revision is None:
            conn.execute(text("DROP TABLE alembic_version"))
        else:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})

    db = Database(url)
    await db.run(write)
    await db.dispose()


def tenantry(url: str, *args: str) -> Result:
    # A PostgreSQL deployment's serve also needs its job key, or it refuses before this.
    return CliRunner().invoke(cli, ["--database-url", url, *args],
                              env={"TENANTRY_JOB_KEY": "k"})


def test_an_older_database_is_refused_naming_both_revisions_and_the_fix(
    database_url: str,
) -> None:
    asyncio.run(_set_revision(database_url, OLDER))

    result = tenantry(database_url, "roles", "list", "--tenant", "acme")

    assert result.exit_code == 1
    assert f"at migration {OLDER}" in result.output
    assert f"needs {HEAD}" in result.output
    assert "tenantry db upgrade" in result.output
    assert "Traceback" not in result.output


@pytest.mark.postgres
def test_the_runtime_and_the_server_refuse_an_older_postgresql(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite, the embedded default, migrates itself on start")
    asyncio.run(_set_revision(database_url, OLDER))

    for command in (["tenants", "list"], ["serve", "--port", "0"]):
        result = tenantry(database_url, *command)
        assert result.exit_code == 1, command
        assert f"at migration {OLDER} and this version of Tenantry needs {HEAD}" \
            in result.output, command


def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    asyncio.run(_set_revision(database_url, "9999"))

    result = tenantry(database_url, "tenants", "list")

    assert result.exit_code == 1
    assert "at migration 9999, newer than this version of Tenantry" in result.output


def test_db_status_and_upgrade_open_any_revision(database_url: str) -> None:
    asyncio.run(_set_revision(database_url, None))

    assert tenantry(database_url, "roles", "list", "--tenant", "acme").exit_code == 1
    status = tenantry(database_url, "db", "status")
    assert status.exit_code == 0
    assert f"current: None  head: {HEAD}" in status.output
