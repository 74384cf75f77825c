"""``tenantry roles``: who holds which role in a tenant.

Roles are per tenant: the same principal id may be an admin in one tenant and a
guest in another. A change applies from the next run on; runs under way keep the
policy they started with.
"""

from __future__ import annotations

import click

from bots.cli_support import (
    LimitedText,
    column_length,
    echo_json,
    json_option,
    open_admin,
    open_database,
    run_async,
)
from core.authz import ADMINISTRATIVE, DEFAULT_PERMISSIONS, ROLES, list_grants
from core.db.schema import runs

_ROLE = click.Choice(ROLES)
_ROLE_HELP = "; ".join(
    f"{role}: {', '.join(patterns)}" for role, patterns in DEFAULT_PERMISSIONS.items()
) + f" ('*' covers everything but {' and '.join(ADMINISTRATIVE)})"
_TENANT_HELP = "The tenant the role applies in (roles never reach another tenant)."
_PRINCIPAL = LimitedText(column_length(runs.c.principal_id))
"""A principal id no longer than a run can record."""


@click.group(epilog=f"Default roles and the capabilities they allow: {_ROLE_HELP}.")
def roles() -> None:
    """Grant, revoke and list principals' roles in a tenant.

    Example: tenantry roles list --tenant acme --json
    """


@roles.command("grant")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
@click.argument("principal", type=_PRINCIPAL)
@click.argument("role", type=_ROLE, metavar="ROLE")
@run_async
async def roles_grant(tenant_id: str, principal: str, role: str) -> None:
    """Give PRINCIPAL the role ROLE in the tenant.

    PRINCIPAL is a principal id as the platform link maps it (e.g. slack:T123:U456);
    ROLE is owner, admin, member or guest. The next run of PRINCIPAL has the role.

    Example: tenantry roles grant --tenant acme slack:T123:U456 admin
    """
    async with open_admin() as admin:
        added = await admin.grant(tenant_id, principal, role)
    state = "now has" if added else "already had"
    click.echo(f"{principal} {state} role {role} in tenant {tenant_id}")


@roles.command("revoke")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
@click.argument("principal", type=_PRINCIPAL)
@click.argument("role", type=_ROLE, metavar="ROLE")
@run_async
async def roles_revoke(tenant_id: str, principal: str, role: str) -> None:
    """Take the role ROLE in the tenant away from PRINCIPAL.

    Runs already under way keep the policy they started with; the next run of
    PRINCIPAL no longer has the role.

    Example: tenantry roles revoke --tenant acme slack:T123:U456 admin
    """
    async with open_admin() as admin:
        removed = await admin.revoke(tenant_id, principal, role)
    state = "no longer has" if removed else "did not have"
    click.echo(f"{principal} {state} role {role} in tenant {tenant_id}")


@roles.command("list")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True,
              help="The tenant whose grants to list.")
@json_option('[{"principal": str, "role": str}], by principal')
@run_async
async def roles_list(tenant_id: str, as_json: bool) -> None:
    """List the tenant's grants, one line each.

    Each line is 'PRINCIPAL ROLE', by principal, so the output pipes well; a tenant
    without grants prints nothing on stdout and says so on stderr.

    Example: tenantry roles list --tenant acme
    """
    async with open_database() as db:
        grants = await db.run(list_grants, tenant_id)
    if as_json:
        echo_json([{"principal": principal, "role": role} for principal, role in grants])
        return
    for principal, role in grants:
        click.echo(f"{principal} {role}")
    if not grants:
        click.echo(f"tenant {tenant_id} has no role grants", err=True)
