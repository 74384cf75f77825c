"""What every ``tenantry`` command shares: the settings, the database, the async runner,
and the way tables are printed."""

from __future__ import annotations

import asyncio
import functools
import getpass
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import click

from core.admin import Admin
from core.audit.keys import load_keys
from core.audit.log import AuditLog
from core.crypto import Keyring
from core.db.engine import Database
from core.db.migrate import require_head
from core.errors import TenantryError
from core.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


def root_settings() -> Settings:
    """The settings the root ``tenantry`` command put in the click context."""
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
    settings = root_settings()
    signer, retired = load_keys(settings)
    async with open_database() as db:
        audit = AuditLog(db, signer, verifiers=retired, origin_prefix=settings.audit_origin)
        yield Admin(db, audit, Keyring.from_settings(settings), by=operator())


def run_async(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command body; a Tenantry error becomes one line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))
        except TenantryError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def when(moment: datetime | None) -> str:
    """A stored time as a table cell: minutes, in UTC; ``-`` for none."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def echo_table(rows: Sequence[Sequence[str]]) -> None:
    """Print the rows (the header first) as columns two spaces apart, left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())
