"""Throwaway databases for tests: a migrated SQLite file or PostgreSQL database each.

Migrations run once per session into a template; each test gets a copy (a file copy
for SQLite, ``CREATE DATABASE ... TEMPLATE`` for PostgreSQL), so tests never share
rows and never pay for the migrations again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from sqlalchemy import Executable, Row
from sqlalchemy.engine import Connection, make_url

from bots.jobs.schema import install_queue_schema
from core.db.engine import Database
from core.db.migrate import upgrade

PG_ENV = "TENANTRY_TEST_DATABASE_URL"


def pg_server_url() -> str | None:
    """The PostgreSQL server the tests may use, from the environment."""
    return os.environ.get(PG_ENV) or None


def _libpq(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


def _psycopg_url(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg", database=database).render_as_string(
        hide_password=False
    )


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
        if not db.is_sqlite:  # as `tenantry db upgrade` does
            await install_queue_schema(url)
    finally:
        await db.dispose()


class SqliteTemplates:
    """Migrated SQLite files to copy from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template = root / "template.db"
        asyncio.run(_migrate(f"sqlite:///{self.template}"))

    def fresh(self) -> str:
        """The URL of a new, migrated database file."""
        path = self.root / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"


class PostgresTemplates:
    """A migrated template database on the test server, and copies of it."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.admin = _libpq(server_url, make_url(server_url).database or "postgres")
        self.template = f"tenantry_tmpl_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []
        self._execute(f'CREATE DATABASE "{self.template}"')
        asyncio.run(_migrate(_psycopg_url(server_url, self.template)))

    def _execute(self, sql: str) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.encode())

    def fresh(self) -> str:
        """The URL of a new database cloned from the template."""
        name = f"tenantry_t_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return _psycopg_url(self.server_url, name)

    def empty(self) -> str:
        """The URL of a new database with nothing in it (not even the migrations)."""
        name = f"tenantry_e_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return _psycopg_url(self.server_url, name)

    def drop(self, url: str) -> None:
        """Drop one test database, disconnecting whoever still holds it."""
        name = make_url(url).database
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop the template."""
        self._execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


async def fetch_all(db: Database, statement: Executable) -> list[Row[Any]]:
    """Every row ``statement`` returns, read in a transaction of its own."""
    return await db.run(lambda conn: list(conn.execute(statement)))


async def fetch_one(db: Database, statement: Executable) -> Row[Any]:
    """The one row ``statement`` returns."""
    return await db.run(lambda conn: conn.execute(statement).one())


async def fetch_value(db: Database, statement: Executable) -> Any:
    """The first column of the first row ``statement`` returns, or ``None``."""
    return await db.run(lambda conn: conn.execute(statement).scalar())


async def execute(db: Database, *statements: Executable) -> int:
    """Run the statements in one transaction; how many rows they changed together."""

    def run_all(conn: Connection) -> int:
        return sum(max(0, conn.execute(s).rowcount) for s in statements)

    return await db.run(run_all)


P = ParamSpec("P")
T = TypeVar("T")


def run_once(url: str, work: Callable[Concatenate[Connection, P], T], *args: P.args,
             **kwargs: P.kwargs) -> T:
    """One transaction on the database at ``url``, from synchronous code (a CLI test
    reading what a command wrote)."""
    async def once() -> T:
        db = Database(url)
        try:
            return await db.run(work, *args, **kwargs)
        finally:
            await db.dispose()

    return asyncio.run(once())
