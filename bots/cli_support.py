"""What every ``tenantry`` command shares: the settings, the database, the async runner."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import click

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


def run_async(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command body; a Tenantry error becomes one line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))
        except TenantryError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper
