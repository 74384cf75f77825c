"""``tenantry slack``: issue install links, and see which workspace serves which tenant.

Install links are sealed with the deployment's encryption keyring (Fernet:
authenticated encryption), the same keys the server reads them with; there is no
separate signing secret to configure, and the keyring never reveals its keys.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import click

from bots.cli_support import (
    echo_json,
    echo_table,
    json_option,
    open_database,
    root_settings,
    run_async,
    when,
)
from bots.settings import ServerSettings
from core.crypto import Keyring
from installs.links import MAX_TTL, issue_install_link, list_links

DEFAULT_TTL_HOURS = 72


@click.group()
def slack() -> None:
    """Link Slack workspaces to tenants.

    Example: tenantry slack install-link --tenant acme
    """


@slack.command("install-link")
@click.option("--tenant", "tenant_id", required=True, help="The tenant to link to.")
@click.option("--base-url", default=None,
              help="Public URL of this deployment (default: TENANTRY_PUBLIC_URL).")
@click.option("--ttl-hours", type=click.IntRange(1, int(MAX_TTL.total_seconds() // 3600)),
              default=DEFAULT_TTL_HOURS, show_default=True,
              help="How long the link can be used.")
@run_async
async def install_link(tenant_id: str, base_url: str | None, ttl_hours: int) -> None:
    """Print a single-use link that installs the Slack app for TENANT's workspace.

    Send it to the tenant's Slack admin; whoever uses it first links their workspace
    (or, for an org-wide install, their Enterprise Grid org) to the tenant.

    Example: tenantry slack install-link --tenant acme --ttl-hours 24
    """
    keyring = Keyring.from_settings(root_settings())
    async with open_database() as db:
        url = await db.run(issue_install_link, keyring, tenant_id,
                           base_url or ServerSettings().public_url, timedelta(hours=ttl_hours))
    click.echo(url)


@slack.command("links")
@json_option('[{"enterprise_id": str|null, "team_id": str|null (org-wide), "tenant_id": str, '
             '"status": "active"|"revoked", "linked_at": ISO 8601, "revoked_at": ISO 8601|null, '
             '"installer_user_id": str|null}]')
@run_async
async def links(as_json: bool) -> None:
    """List every workspace and org link, active and revoked.

    Example: tenantry slack links --json
    """
    async with open_database() as db:
        found = await db.run(list_links)
    if as_json:
        echo_json([asdict(link) for link in found])
        return
    if not found:
        click.echo("no Slack workspace is linked yet")
        return
    rows = [("ENTERPRISE", "TEAM", "TENANT", "STATUS", "LINKED", "REVOKED", "INSTALLER")]
    rows += [
        (ln.enterprise_id or "-", ln.team_id or "(org-wide)", ln.tenant_id, ln.status,
         when(ln.linked_at), when(ln.revoked_at), ln.installer_user_id or "-")
        for ln in found
    ]
    echo_table(rows)


@slack.command("manifest")
@click.option("--url", "base_url", required=True,
              help="The deployment's public base URL, e.g. https://tenantry.example.org.")
@click.option("--command", "command", default=None,
              help="The slash command (default: TENANTRY_SLACK_COMMAND or /ask).")
def slack_manifest(base_url: str, command: str | None) -> None:
    """Print the Slack app manifest filled in for a deployment.

    Example: tenantry slack manifest --url https://tenantry.example.org > manifest.json
    """
    from bots.slack.manifest import render_manifest
    from bots.slack.settings import SlackSettings
    from core.errors import InvalidInput

    try:
        click.echo(render_manifest(base_url, command or SlackSettings().command), nl=False)
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
