"""PostgreSQL transactions in psycopg's pipeline mode: a few round trips, not one a statement.

A transaction sent statement by statement waits for the server after each one, and
for ``BEGIN`` and ``COMMIT`` besides: a step's transaction of four statements is six
round trips. ``transaction`` runs ``Database.run``'s work in psycopg's pipeline mode
on a connection in autocommit mode, so that ``BEGIN`` is Tenantry's own statement
and travels with the first one. A statement then waits only where its result is
needed before the commit: ``Prepared.execute`` and SQLAlchemy's ``Connection.execute``
wait (``wait``), ``Prepared.queue`` does not: its result, and any error, arrive with
the next wait, at the latest with ``COMMIT``'s. A step's reservation is then
``BEGIN``, the run's deferred writes, the charge and ``COMMIT`` in one round trip.

Failures keep their meaning. Any error rolls the transaction back, ``COMMIT``
included, since in a pipeline the server skips everything after an error. A
failure once ``COMMIT`` is out is never retried: the commit may have happened. A
connection that died in the pool (across a server restart, say) is found out
before that: the server writes to a connection it closes, so a connection with
input waiting while idle waits for its ``BEGIN`` before the work is sent, and if it
is dead, ``StaleConnection`` tells the caller it may run the work again.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, StatementError

T = TypeVar("T")
_KEY = "tenantry_pipeline"
"""Key of the open transaction's pipeline in the connection's ``info``."""


class StaleConnection(Exception):
    """The connection was dead before the transaction could commit anything."""


def in_pipeline(conn: Connection) -> bool:
    """Whether ``conn`` is in a pipelined transaction, where results come later."""
    return _KEY in conn.info


def wait(conn: Connection) -> None:
    """Wait for every statement sent so far in ``conn``'s pipeline; nothing outside one."""
    pipeline = conn.info.get(_KEY)
    if pipeline is not None:
        pipeline.sync()


def wait_after_execute(conn: Connection, *_: Any) -> None:
    """An ``after_cursor_execute`` listener: what SQLAlchemy runs waits for its result.

    SQLAlchemy reads a statement's result description and row count right after
    executing it; in a pipeline they are there once the pipeline has synced.
    """
    wait(conn)


def driver_error(
    conn: Connection, error: Any, sql: str, params: Any, cursor: Any = None
) -> StatementError:
    """The driver's ``error`` as SQLAlchemy raises it; a dead connection is invalidated."""
    invalidated = conn.dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
    if invalidated:
        conn.invalidate(error)
    wrapped: StatementError = DBAPIError.instance(
        sql, params, error, conn.dialect.loaded_dbapi.Error,
        connection_invalidated=invalidated, dialect=conn.dialect,
    )
    return wrapped


def transaction(
    conn: Connection, work: Callable[[Connection], T], *, readonly: bool, retry: bool
) -> T:
    """Run ``work`` between ``BEGIN`` and ``COMMIT`` in pipeline mode; return its result.

    ``conn`` must be in autocommit mode (the driver must not begin transactions of
    its own). Everything ``work`` sends has succeeded when this returns, and the
    cursors of its queued statements hold their results.

    Raises:
        StaleConnection: ``retry`` is set and the connection was found dead before
            ``COMMIT`` was sent; the connection is invalidated.
        DBAPIError: any other database failure, after rolling back.
    """
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    committing = False
    try:
        try:
            suspect = _has_input(dbapi_connection)
            info = conn.info  # kept: invalidating the connection replaces ``conn.info``
            with dbapi_connection.pipeline() as pipeline:
                info[_KEY] = pipeline
                try:
                    cursor = dbapi_connection.cursor()
                    cursor.execute(b"BEGIN READ ONLY" if readonly else b"BEGIN")
                    if suspect:
                        wait(conn)
                    result = work(conn)
                    committing = True
                    cursor.execute(b"COMMIT")
                finally:
                    del info[_KEY]
            # leaving the pipeline waited for the COMMIT
        except conn.dialect.loaded_dbapi.Error as error:
            sql = "COMMIT" if committing else "(pipeline)"
            raise driver_error(conn, error, sql, None) from error
    except DBAPIError as error:
        _rollback(conn)
        if retry and error.connection_invalidated and not committing:
            raise StaleConnection from error
        raise
    except BaseException:
        _rollback(conn)
        raise
    return result


def _has_input(dbapi_connection: Any) -> bool:
    """Whether the server wrote to this idle connection: most likely, that it closed it.

    ``poll``, not ``select``: a busy process's descriptors go past ``select``'s 1024.
    """
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _rollback(conn: Connection) -> None:
    """End a failed transaction; a connection that cannot even do that is invalidated."""
    if conn.invalidated:
        return
    dbapi_connection = conn.connection.dbapi_connection
    try:
        if dbapi_connection is not None:
            dbapi_connection.rollback()
    except conn.dialect.loaded_dbapi.Error as error:
        conn.invalidate(error)
