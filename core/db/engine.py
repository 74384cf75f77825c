"""Engine creation for both databases, and the one place that knows their differences."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.schema import Table

from core.db import pipeline
from core.errors import ConfigurationError

SQLITE_BUSY_TIMEOUT_S = 30
_READ_ONLY = "tenantry_read_only"
TRANSACTION_THREADS = 8
"""Worker threads (and pooled connections) for ``Database.run`` transactions."""

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """Map the plain PostgreSQL and SQLite schemes onto the async drivers Tenantry uses."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigurationError(
        "database url must be sqlite+aiosqlite:///FILE or postgresql+psycopg://..., "
        f"got scheme {url.split(':', 1)[0]!r}"
    )


def _sync_url(url: str) -> str:
    """The same database through the synchronous driver (pysqlite, or psycopg's sync API)."""
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite+pysqlite://" + url.split("://", 1)[1]
    return url


def _prepare_sqlite(engine: Engine, *, wait_for_lock: bool = True) -> None:
    """WAL, foreign keys, hard deletes, and write transactions that queue instead of failing.

    A deferred SQLite transaction that upgrades from read to write fails at once with
    ``database is locked`` when another writer holds the lock, whatever the busy
    timeout; ``BEGIN IMMEDIATE`` takes the write lock up front, so concurrent runs
    wait their turn (busy timeout) instead.

    Args:
        wait_for_lock: ``False`` for the event loop's own connection: its
            ``BEGIN IMMEDIATE`` fails at once when the lock is taken, and it never
            checkpoints the WAL (the other connections do), so it never blocks.
    """
    busy_timeout_ms = SQLITE_BUSY_TIMEOUT_S * 1000 if wait_for_lock else 0

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not wait_for_lock:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class _LockTaken(Exception):
    """Another connection holds SQLite's write lock; the transaction goes to a thread."""


class Database:
    """The app database: an async engine plus the dialect-specific statements.

    Most work goes through the async engine (``begin``, ``read``). A run's writes go
    through ``run`` instead: a whole transaction as one synchronous function, on the
    event loop's own SQLite connection while the write lock is free, else on a
    synchronous engine in a worker thread, so a transaction costs at most one hop off
    the event loop rather than one per statement.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        sync_kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
            sync_kwargs["connect_args"] = {
                "timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False,
            }
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
            # Database.run sends its own BEGIN and COMMIT, in pipeline mode.
            sync_kwargs["isolation_level"] = "AUTOCOMMIT"
        sync_kwargs.update(pool_size=TRANSACTION_THREADS, max_overflow=0)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self.sync_engine: Engine = create_engine(_sync_url(self.url), **sync_kwargs)
        if self.is_sqlite:
            _prepare_sqlite(self.engine.sync_engine)
            _prepare_sqlite(self.sync_engine)
        else:
            event.listen(self.sync_engine, "after_cursor_execute", pipeline.wait_after_execute)
        self._threads = ThreadPoolExecutor(
            max_workers=TRANSACTION_THREADS, thread_name_prefix="tenantry-db"
        )
        self._inline: Engine | None = None
        self._inline_busy = threading.Lock()  # one connection: never two threads' loops at once
        if self.is_sqlite:
            self._inline = create_engine(
                _sync_url(self.url), echo=echo, poolclass=StaticPool,
                connect_args={"timeout": 0, "check_same_thread": False},
            )
            _prepare_sqlite(self._inline, wait_for_lock=False)

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.url.startswith("sqlite")

    @property
    def sync_engines(self) -> tuple[Engine, ...]:
        """Every engine underneath, as synchronous engines: for instrumentation."""
        inline = (self._inline,) if self._inline is not None else ()
        return (self.engine.sync_engine, self.sync_engine, *inline)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        async with self.engine.begin() as conn:
            yield conn

    async def run(self, work: Callable[[Connection], T], *, readonly: bool = False) -> T:
        """Run ``work`` as one transaction and return its result.

        ``work`` must only touch the database through the connection it is given and
        must not wait for the event loop: it runs to completion (commit, or rollback
        if it raises) even when the awaiting task is cancelled, exactly as if the
        process had stopped after the commit. Never call this while holding a write
        transaction from ``begin`` on SQLite: the two would wait for each other's lock.

        On PostgreSQL it runs in a worker thread, in pipeline mode
        (``core.db.pipeline``), where statements that need not wait share round
        trips. On SQLite a transaction of a few statements takes less time than
        handing it to a thread and back, so it runs right here when the write lock
        is free, and in a worker thread (which waits for the lock) when it is not:
        the event loop never waits for a lock.

        Args:
            readonly: A snapshot read (as ``read``): no write lock on SQLite, a
                ``READ ONLY`` transaction on PostgreSQL.
        """
        if self._inline is not None and self._inline_busy.acquire(blocking=False):
            try:
                return self._inline_transaction(work, readonly)
            except _LockTaken:
                pass
            finally:
                self._inline_busy.release()
        loop = asyncio.get_running_loop()
        transaction = self._sqlite_transaction if self.is_sqlite else self._postgres_transaction
        return await loop.run_in_executor(self._threads, transaction, work, readonly)

    def _inline_transaction(self, work: Callable[[Connection], T], readonly: bool) -> T:
        assert self._inline is not None
        with self._inline.connect() as conn:
            if readonly:
                conn = conn.execution_options(**{_READ_ONLY: True})
            try:
                transaction = conn.begin()
            except OperationalError as error:
                if getattr(error.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
                    raise _LockTaken from error
                raise
            with transaction:
                return work(conn)

    def _sqlite_transaction(self, work: Callable[[Connection], T], readonly: bool) -> T:
        """``work`` in a transaction on a worker thread's connection, which waits for the lock."""
        with self.sync_engine.connect() as conn:
            if readonly:
                conn = conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                return work(conn)

    def _postgres_transaction(self, work: Callable[[Connection], T], readonly: bool) -> T:
        """``work`` in a transaction, once more on a fresh connection if the first was dead.

        The engine does not ping a connection before each transaction (a round trip
        per transaction on the run's hot path). A connection that died in the pool,
        say across a server restart, is found dead before anything was committed, so
        the transaction is simply run again (``pipeline.StaleConnection``).
        """
        try:
            with self.sync_engine.connect() as conn:
                return pipeline.transaction(conn, work, readonly=readonly, retry=True)
        except pipeline.StaleConnection:
            with self.sync_engine.connect() as conn:
                return pipeline.transaction(conn, work, readonly=readonly, retry=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction: one consistent snapshot that never waits for writers.

        On SQLite it is a deferred ``BEGIN``, so readers do not queue behind the write
        lock that :meth:`begin` takes up front; on PostgreSQL it is ``READ ONLY``.
        Writing inside it is an error on PostgreSQL and must not be attempted.
        """
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(**{_READ_ONLY: True})
            else:
                conn = await conn.execution_options(postgresql_readonly=True)
            async with conn.begin():
                yield conn

    def insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT that supports ``on_conflict_do_nothing`` on either dialect."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)

    async def dispose(self) -> None:
        """Close every pooled connection and stop the transaction threads."""
        await self.engine.dispose()
        self._threads.shutdown(wait=True)
        self.sync_engine.dispose()
        if self._inline is not None:
            self._inline.dispose()
