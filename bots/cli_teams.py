"""``tenantry teams``: link Microsoft 365 organisations to tenants; build the app package.

A Microsoft 365 organisation (an Entra tenant) that installs the Teams app is pending
until one of its admins sends the bot a link code issued here. Codes are sealed with
the deployment's encryption keyring, like Slack install links, and work once.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import click
from sqlalchemy.engine import Connection

from bots.cli_support import (
    echo_json,
    echo_table,
    json_option,
    open_admin,
    open_database,
    root_settings,
    run_async,
    when,
)
from core.audit.log import AuditLog
from core.crypto import Keyring
from core.errors import InvalidInput, NotFound
from installs.link_tokens import MAX_TTL
from installs.teams_links import (
    TeamsLink,
    issue_link_code,
    list_teams_links,
    resolve_teams,
    revoke_teams,
)

DEFAULT_TTL_HOURS = 72
DEFAULT_PACKAGE = "tenantry-teams.zip"


@click.group()
def teams() -> None:
    """Link Microsoft 365 organisations to tenants; build the Teams app package.

    Example: tenantry teams link-code --tenant acme
    """


@teams.command("link-code")
@click.option("--tenant", "tenant_id", required=True, help="The tenant to link to.")
@click.option("--ttl-hours", type=click.IntRange(1, int(MAX_TTL.total_seconds() // 3600)),
              default=DEFAULT_TTL_HOURS, show_default=True,
              help="How long the code can be used.")
@run_async
async def link_code(tenant_id: str, ttl_hours: int) -> None:
    """Print a single-use code that links a Microsoft 365 organisation to TENANT.

    The code goes to stdout and the instructions to stderr, so the code can be piped.

    Example: tenantry teams link-code --tenant acme --ttl-hours 24
    """
    keyring = Keyring.from_settings(root_settings())
    async with open_database() as db:
        code = await db.run(issue_link_code, keyring, tenant_id, timedelta(hours=ttl_hours))
    click.echo(code)
    click.echo(f"Have an admin of the tenant's Microsoft 365 organisation send 'link <code>' "
               f"to the Tenantry bot in a 1:1 chat in Teams; the code works once, within "
               f"{ttl_hours} hours.", err=True)


@teams.command("links")
@json_option('[{"entra_tenant_id": str, "tenant_id": str|null, "status": str, '
             '"first_seen_at": ISO 8601, "linked_at": ISO 8601|null, "revoked_at": '
             'ISO 8601|null, "linked_by": str|null}]')
@run_async
async def links(as_json: bool) -> None:
    """List every Microsoft 365 organisation that installed the app, and its link.

    Example: tenantry teams links --json
    """
    async with open_database() as db:
        found = await db.run(list_teams_links)
    if as_json:
        echo_json([asdict(link) for link in found])
        return
    if not found:
        click.echo("no Microsoft 365 organisation has installed the Teams app yet")
        return
    rows = [("ENTRA TENANT", "TENANT", "STATUS", "LINKED BY", "FIRST SEEN", "LINKED",
             "REVOKED")]
    rows += [
        (ln.entra_tenant_id, ln.tenant_id or "-", ln.status, ln.linked_by or "-",
         when(ln.first_seen_at), when(ln.linked_at), when(ln.revoked_at))
        for ln in found
    ]
    echo_table(rows)


def _unlink(
    conn: Connection, audit: AuditLog, entra_tenant_id: str, by: str
) -> tuple[TeamsLink, TeamsLink]:
    before = resolve_teams(conn, entra_tenant_id)
    after = revoke_teams(conn, audit, entra_tenant_id, "operator", by=by)
    if before is None or after is None:
        raise NotFound(f"no Microsoft 365 organisation {entra_tenant_id} is known here")
    return before, after


@teams.command("unlink")
@click.argument("entra_tenant_id")
@run_async
async def unlink(entra_tenant_id: str) -> None:
    """Revoke ENTRA_TENANT_ID's link: its users are refused until a new code links it.

    Recorded in the tenant's audit log with the operator. Its conversation references
    are forgotten; its history and runs stay until the tenant is purged.

    Example: tenantry teams unlink 72f988bf-86f1-41af-91ab-2d7cd011db47
    """
    async with open_admin() as admin:
        before, after = await admin.db.run(_unlink, admin.audit, entra_tenant_id, admin.by)
    if before.active:
        click.echo(f"Entra tenant {after.entra_tenant_id} unlinked from tenant "
                   f"{before.tenant_id}")
    else:
        click.echo(f"Entra tenant {after.entra_tenant_id} was not linked ({before.status}); "
                   f"it is {after.status} now")


@teams.command("package")
@click.option("--app-id", required=True,
              help="The Entra app registration's application (client) id the bot signs in as.")
@click.option("--host", required=True,
              help="The deployment's public host name, e.g. tenantry.example.com.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              default=DEFAULT_PACKAGE, show_default=True, help="Where to write the zip.")
def package(app_id: str, host: str, out: Path) -> None:
    """Build the Teams app package (manifest and icons) for this deployment.

    Upload it in the Teams admin centre, or sideload it for a trial.

    Example: tenantry teams package --app-id 00000000-0000-0000-0000-000000000000 --host
    tenantry.example.org
    """
    from bots.teams.package import build_package

    try:
        built = build_package(app_id, host)
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
    out.write_bytes(built)
    click.echo(f"wrote {out}")
