"""Errors a command can meet, each said as one line naming what to check.

The ``TenantryError`` tree already speaks to people; what reaches the command line
from below it (the database driver, the disk, integer conversion) is turned into one
line here, so no input ever ends in a traceback. A database URL is shown without its
password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from core.errors import TenantryError

if TYPE_CHECKING:
    from core.settings import Settings


def safe_url(url: str) -> str:
    """``url`` as it may be shown: with its password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def _database_file(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or "(in memory)"


def describe_database_error(exc: BaseException, url: str) -> str:
    """One line saying what went wrong with the database at ``url`` and what to check."""
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else ""
    lowered = detail.lower()
    if url.startswith("sqlite"):
        path = _database_file(url)
        if "readonly database" in lowered or "read-only" in lowered:
            return (f"the database file {path} is read-only: make it (and its folder) "
                    "writable by this user")
        if "disk is full" in lowered or "database or disk is full" in lowered:
            return f"cannot write the database file {path}: the disk holding it is full"
        if "unable to open database file" in lowered:
            return (f"cannot open the database file {path}: check that its folder exists "
                    "and is writable")
        return f"the database file {path} failed: {detail}"
    if "value too long" in lowered or "out of range" in lowered:
        return f"a value is longer or larger than the database column holds: {detail}"
    if "nul (0x00)" in lowered:
        return "PostgreSQL cannot store text with NUL (0x00) characters: remove them first"
    return (f"cannot use the database at {safe_url(url)}: {detail} (check that the server "
            "is running and reachable, and the host, port, database name, user and password "
            "in TENANTRY_DATABASE_URL)")


@contextmanager
def one_line_errors(database_url: str | None) -> Iterator[None]:
    """Turn the errors a command can meet into a ``ClickException`` of one line."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import ArgumentError, DBAPIError

    try:
        yield
    except TenantryError as exc:
        raise click.ClickException(str(exc)) from None
    except DBAPIError as exc:
        if database_url is None:
            raise
        raise click.ClickException(describe_database_error(exc, database_url)) from None
    except (ValidationError, SettingsError) as exc:
        raise click.ClickException(settings_error_line(exc)) from None
    except ArgumentError as exc:
        raise click.ClickException(f"TENANTRY_DATABASE_URL is not a database URL: {exc}") \
            from None
    except OverflowError as exc:
        raise click.ClickException(
            f"a number is larger than the database can hold: {exc}") from None
    except OSError as exc:
        if exc.filename is None:
            raise
        raise click.ClickException(f"{exc.filename}: {exc.strerror}") from None


def settings_error_line(exc: Exception, prefix: str = "TENANTRY_") -> str:
    """One line naming each setting that is wrong, by its environment variable."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{prefix}{str(error['loc'][0]).upper() if error['loc'] else '?'}: "
            f"{error['msg']}" for error in exc.errors())
    return f"a setting cannot be read: {str(exc).splitlines()[0]}"


def load_settings(database_url: str | None) -> Settings:
    """The deployment's settings, or a one-line error naming the variable that is wrong."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from core.settings import Settings

    try:
        return Settings() if database_url is None else Settings(database_url=database_url)
    except (ValidationError, SettingsError) as exc:
        raise click.ClickException(settings_error_line(exc)) from None
