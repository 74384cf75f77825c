"""The statements every agent step runs, sent straight to the driver's cursor.

``Connection.execute`` costs about 25 µs of Python per statement on top of the
driver's own 5 (execution context, events, result wrapping); a step runs a dozen
of these statements, so that is a tenth of its budget. ``Prepared`` keeps what
SQLAlchemy gives a statement, its SQL for the dialect and the conversion of each
parameter from the column types (JSON, UTC timestamps, booleans), compiled once,
and hands the result to the DBAPI cursor of the connection's transaction. Only the
path changes, not the statement: the same SQL runs, in the same transaction.

Driver errors come back as SQLAlchemy's exceptions (``IntegrityError``...), and a
connection found dead is invalidated exactly as SQLAlchemy would do it, so callers
and ``Database.run``'s reconnect see no difference.

``execute`` returns with the statement's result. ``queue`` does not wait for it:
on PostgreSQL the statement then shares the round trip of the transaction's next
statement that waits, or of its ``COMMIT`` (``core.db.pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from core.db.pipeline import driver_error, in_pipeline, wait

Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positions: tuple[str, ...] | None
    """Parameter names in order for positional drivers (SQLite); ``None`` for named."""
    processors: dict[str, Callable[[Any], Any]]
    constants: dict[str, Any]
    """Values SQLAlchemy bound when the statement was built (``status='settled'``)."""


class Prepared:
    """One statement, compiled once per dialect and set of parameter names."""

    def __init__(self, statement: Executable) -> None:
        if not isinstance(statement, ClauseElement):
            raise TypeError("Prepared needs a Core statement")
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def execute(self, conn: Connection, params: Params) -> Any:
        """Run the statement with ``params`` in ``conn``'s transaction; the DBAPI cursor.

        The cursor holds the statement's result (rows, ``rowcount``) when this returns.
        """
        compiled = self._for(conn.dialect, params)
        return _send(conn, compiled, [_values(compiled, params)], many=False, waits=True)

    def queue(self, conn: Connection, params: Params) -> Later:
        """Send the statement without waiting for its result.

        In a pipeline it goes out with the transaction's next round trip, and so
        does any error it meets, which fails the transaction there; elsewhere it is
        simply executed. Its result can be read once the transaction is over.
        """
        compiled = self._for(conn.dialect, params)
        cursor = _send(conn, compiled, [_values(compiled, params)], many=False, waits=False)
        return Later(cursor, pending=in_pipeline(conn))

    def execute_many(self, conn: Connection, rows: Sequence[Params]) -> Any:
        """Run the statement once per row (all rows have the same keys)."""
        compiled = self._for(conn.dialect, rows[0])
        return _send(
            conn, compiled, [_values(compiled, row) for row in rows], many=True, waits=True
        )

    def _for(self, dialect: Dialect, params: Params) -> _Compiled:
        key = (dialect.name, tuple(params))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _compile(self.statement, dialect, list(params))
        return compiled


class Later:
    """The first row a queued statement returned, once its transaction is over."""

    def __init__(self, cursor: Any, *, pending: bool) -> None:
        if pending:  # the pipeline fills the cursor in when its transaction waits
            self._cursor: Any = cursor
            return
        # Read now: SQLite cannot commit while a statement still has rows to give.
        rows = cursor.fetchall() if cursor.description else []
        self._cursor = None
        self._row = rows[0] if rows else None

    def row(self) -> Any:
        """The statement's first row, or ``None`` if it returned none."""
        if self._cursor is not None:
            self._row = self._cursor.fetchone()
            self._cursor = None
        return self._row


def _compile(statement: ClauseElement, dialect: Dialect, keys: list[str]) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=keys)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError("Prepared needs a SQL statement")
    used = set(compiled.bind_names.values())
    processors: dict[str, Callable[[Any], Any]] = {}
    constants: dict[str, Any] = {}
    for name, bind in compiled.binds.items():
        if name not in used:
            continue
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
        if name not in keys and not bind.required:
            constants[name] = bind.effective_value
    positions = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    return _Compiled(compiled.string, positions, processors, constants)


def _values(compiled: _Compiled, params: Params) -> Any:
    merged = {**compiled.constants, **params} if compiled.constants else params
    processors = compiled.processors
    if compiled.positions is not None:
        return [
            processors[name](merged[name]) if name in processors else merged[name]
            for name in compiled.positions
        ]
    return {
        name: processors[name](value) if name in processors else value
        for name, value in merged.items()
    }


def _send(
    conn: Connection, compiled: _Compiled, values: list[Any], *, many: bool, waits: bool
) -> Any:
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        if many:
            cursor.executemany(compiled.sql, values)
        else:
            cursor.execute(compiled.sql, values[0])
        if waits:
            wait(conn)
    except conn.dialect.loaded_dbapi.Error as error:
        raise driver_error(conn, error, compiled.sql, values, cursor) from error
    return cursor
