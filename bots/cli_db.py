"""``tenantry db``: the app database's schema migrations."""

from __future__ import annotations

import click

from bots.cli_support import open_database, root_settings, run_async
from core.db.migrate import current_revision, head_revision, upgrade


@click.group()
def db() -> None:
    """Manage the app database schema.

    Example: tenantry db upgrade
    """


@db.command("upgrade")
@run_async
async def db_upgrade() -> None:
    """Apply every migration up to the newest; on PostgreSQL, install the job queue too.

    Example: TENANTRY_DATABASE_URL=postgresql+psycopg://tenantry@db/tenantry tenantry db upgrade
    """
    async with open_database(any_revision=True) as database:
        await upgrade(database)
        click.echo(f"database at revision {await current_revision(database)}")
        if not database.is_sqlite:
            from bots.jobs.schema import install_queue_schema

            installed = await install_queue_schema(root_settings().database_url)
            click.echo("job queue installed" if installed else "job queue already installed")


@db.command("status")
@run_async
async def db_status() -> None:
    """Show the database's revision and the newest one shipped.

    Example: tenantry db status
    """
    async with open_database(any_revision=True) as database:
        click.echo(f"current: {await current_revision(database)}  head: {head_revision()}")
