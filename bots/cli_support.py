"""What every ``tenantry`` command shares: the settings, the database, the async runner,
and the way tables and JSON are printed.

Imports of the database and the audit log wait until a command runs, so that
``tenantry --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from bots.cli_errors import one_line_errors

if TYPE_CHECKING:
    from core.admin import Admin
    from core.db.engine import Database
    from core.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


def root_settings() -> Settings:
    """The settings the root ``tenantry`` command put in the click context."""
    from core.settings import Settings

    settings = click.get_current_context().find_root().obj
    if not isinstance(settings, Settings):
        raise click.UsageError("this command runs under `tenantry`, which supplies settings")
    return settings


@asynccontextmanager
async def open_database(*, any_revision: bool = False) -> AsyncIterator[Database]:
    """The deployment's database, disposed of when the command is done.

    Args:
        any_revision: Open it whatever its migration; otherwise a database at another
            revision than this code's is refused.
    """
    from core.db.engine import Database
    from core.db.migrate import require_head

    db = Database(root_settings().database_url)
    try:
        if not any_revision:
            await require_head(db)
        yield db
    finally:
        await db.dispose()


def operator() -> str:
    """Who is acting, as the audit log names an operator at the command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a bare container
        return "cli"


@asynccontextmanager
async def open_admin() -> AsyncIterator[Admin]:
    """Administrative actions on the deployment's database, each audited as the operator's."""
    from core.admin import Admin
    from core.audit.keys import load_keys
    from core.audit.log import AuditLog
    from core.crypto import Keyring

    settings = root_settings()
    signer, retired = load_keys(settings)
    async with open_database() as db:
        audit = AuditLog(db, signer, verifiers=retired, origin_prefix=settings.audit_origin)
        yield Admin(db, audit, Keyring.from_settings(settings), by=operator())


def run_async(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command body; an error it meets becomes one line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with one_line_errors(database_url()):
            return asyncio.run(func(*args, **kwargs))

    return wrapper


def database_url() -> str | None:
    """The database URL of the running command, for error messages; ``None`` outside one."""
    context = click.get_current_context(silent=True)
    settings = None if context is None else context.find_root().obj
    url = getattr(settings, "database_url", None)
    return url if isinstance(url, str) else None


def json_option(shape: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A ``--json`` flag whose help documents the shape printed, so scripts can rely on it.

    Args:
        shape: The JSON printed, e.g. ``[{"id": str, "name": str}]``.
    """
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print JSON instead of text: {shape}.")


def echo_json(value: Any) -> None:
    """Print ``value`` as JSON (times in ISO 8601), one document on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def when(moment: datetime | None) -> str:
    """A stored time as a table cell: minutes, in UTC; ``-`` for none."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def echo_table(rows: Sequence[Sequence[str]]) -> None:
    """Print the rows (the header first) as columns two spaces apart, left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())


class LimitedText(click.ParamType[str]):
    """Text no longer than the database column it is stored in: SQLite would keep a
    longer value, PostgreSQL refuses it, so the command line refuses it on both."""

    name = "text"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        if len(text) > self.limit:
            self.fail(f"{len(text)} characters is longer than the {self.limit} it may have",
                      param, ctx)
        return text


def column_length(column: Any) -> int:
    """The length a ``String`` column holds."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} has no length")
    return length
