"""The app database, and its one way in: ``Database.run``.

Every transaction is a plain function of a SQLAlchemy ``Connection`` that
``Database.run`` executes in a worker thread, committed when it returns and rolled
back if it raises::

    @reads
    def get_run(conn: Connection, tenant_id: str, run_id: str) -> RunRecord: ...

    record = await db.run(get_run, tenant_id, run_id)

Each statement inside goes through ``Connection.execute``. A transaction function
cannot await anything, so it cannot wait for the event loop, call the model or hold
a lock across an outside call: what it does is short by construction. Once started
it runs to its commit or rollback even if the awaiting task is cancelled, exactly
as if the process had stopped after the commit.

One hop to a thread per transaction costs less than SQLAlchemy's async engine, which
hops to the driver for every statement.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.schema import Table

from core.errors import ConfigurationError

SQLITE_BUSY_TIMEOUT_S = 30
TRANSACTION_THREADS = 8
"""Worker threads, and pooled connections, for transactions."""
_READ_ONLY = "tenantry_read_only"

T = TypeVar("T")
P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])


def reads(work: F) -> F:
    """Mark a transaction function as read-only: ``Database.run`` gives it a snapshot.

    A read never waits for writers: it begins deferred on SQLite (no write lock) and
    ``READ ONLY`` on PostgreSQL, where a write inside it fails.
    """
    setattr(work, _READ_ONLY, True)  # a plain attribute on a function
    return work


def dialect_insert(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT of the connection's dialect, for ``on_conflict_do_nothing`` and upserts.

    Both dialects write the same ``ON CONFLICT`` clause; SQLAlchemy only builds it
    from the dialect's own construct.
    """
    return sqlite.insert(table) if conn.dialect.name == "sqlite" else postgresql.insert(table)


def normalise_url(url: str) -> str:
    """The database URL with the synchronous driver Tenantry uses for it.

    ``sqlite:///FILE`` and ``postgresql://...`` are accepted as they are commonly
    written, and so are the async drivers' schemes of earlier configurations.

    Raises:
        ConfigurationError: neither SQLite nor PostgreSQL.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return "postgresql+psycopg://" + rest
    if sep and scheme in ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"):
        return "sqlite+pysqlite://" + rest
    raise ConfigurationError(
        "database url must be sqlite:///FILE or postgresql+psycopg://..., "
        f"got scheme {scheme!r}"
    )


def _prepare_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, hard deletes, and write transactions that queue for the lock.

    A deferred SQLite transaction that upgrades from read to write fails at once with
    ``database is locked`` when another writer holds the lock, whatever the busy
    timeout; ``BEGIN IMMEDIATE`` takes the write lock up front, so concurrent writers
    wait their turn instead. Read-only transactions begin deferred and never wait.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "secure_delete=ON",
                       f"busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Database:
    """The app database: SQLite (embedded default) or PostgreSQL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        kwargs: dict[str, Any] = {
            "echo": echo, "pool_size": TRANSACTION_THREADS, "max_overflow": 0,
            # A failed statement's message must not carry a prompt or a token.
            "hide_parameters": True,
        }
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S,
                                      "check_same_thread": False}
        else:
            # A connection that died in the pool (a server restart) is found out before use.
            kwargs["pool_pre_ping"] = True
        self.sync_engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _prepare_sqlite(self.sync_engine)
        self._threads = ThreadPoolExecutor(
            max_workers=TRANSACTION_THREADS, thread_name_prefix="tenantry-db"
        )

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.url.startswith("sqlite")

    async def run(
        self,
        work: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``work(conn, *args, **kwargs)`` as one transaction in a worker thread.

        Returns what ``work`` returns, once committed; if ``work`` raises, the
        transaction is rolled back and the error propagates. A function marked with
        ``reads`` gets a read-only snapshot.
        """
        call = functools.partial(self._transaction, work, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    def _transaction(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.sync_engine.connect() as conn:
            if getattr(work, _READ_ONLY, False):
                options = {_READ_ONLY: True} if self.is_sqlite else {"postgresql_readonly": True}
                conn = conn.execution_options(**options)
            with conn.begin():
                return work(conn, *args, **kwargs)

    async def dispose(self) -> None:
        """Close every pooled connection and stop the transaction threads.

        Transactions still running finish first; the event loop goes on meanwhile.
        """
        await asyncio.to_thread(self._threads.shutdown, wait=True)
        self.sync_engine.dispose()
