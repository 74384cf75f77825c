"""``tenantry api-keys``: the keys a tenant's services and MCP clients authenticate with.

A key is printed once, when it is created; Tenantry keeps only its hash. Each key acts
as one principal of one tenant, with that principal's roles, and every use of it is
recorded in the tenant's audit log under that principal.
"""

from __future__ import annotations

import re
from datetime import timedelta

import click

from bots.cli_support import (
    LimitedText,
    column_length,
    echo_json,
    echo_table,
    json_option,
    open_admin,
    open_database,
    run_async,
    when,
)
from core.api_keys.tables import api_keys
from core.authz import ROLES

_TENANT_HELP = "The tenant the key belongs to (a key never authorises another tenant)."
_PRINCIPAL = LimitedText(column_length(api_keys.c.principal_id))
_DURATION = re.compile(r"^([1-9][0-9]{0,4})([dh])$")


class Duration(click.ParamType[timedelta]):
    """``90d`` or ``12h``."""

    name = "DURATION"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a duration like 90d or 12h", param, ctx)
        amount = int(match[1])
        return timedelta(days=amount) if match[2] == "d" else timedelta(hours=amount)


@click.group("api-keys")
def api_keys_group() -> None:
    """Create, list and revoke a tenant's API keys (HTTP API and MCP).

    Example: tenantry api-keys create --tenant acme --principal svc:billing --role member
    """


@api_keys_group.command("create")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
@click.option("--principal", required=True, type=_PRINCIPAL,
              help="Who the key acts as (e.g. svc:billing); its roles are the principal's.")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="Grant the principal this role in the tenant first.")
@click.option("--expires", type=Duration(), default=None,
              help="Expire the key after this long (90d, 12h); never by default.")
@json_option('{"key": str, "prefix": str, "principal": str, "expires_at": str|null}')
@run_async
async def create(tenant_id: str, principal: str, role: str | None,
                 expires: timedelta | None, as_json: bool) -> None:
    """Create a key acting as PRINCIPAL in the tenant and print it, once.

    Store it where the client keeps secrets: Tenantry keeps only its hash and cannot
    show it again.

    Example: tenantry api-keys create --tenant acme --principal svc:billing --expires 90d
    """
    async with open_admin() as admin:
        issued = await admin.create_api_key(tenant_id, principal, role=role,
                                            expires_in=expires)
    key = issued.key
    if as_json:
        echo_json({"key": issued.secret, "prefix": key.prefix, "principal": key.principal_id,
                   "expires_at": key.expires_at})
        return
    click.echo(issued.secret)
    click.echo(f"key {key.prefix} acts as {key.principal_id} in tenant {tenant_id}; "
               f"expires {when(key.expires_at) if key.expires_at else 'never'}. "
               "It is shown only this once.", err=True)


@api_keys_group.command("list")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
@json_option('[{"prefix": str, "principal": str, "created_at": str, "created_by": str, '
             '"last_used_at": str|null, "expires_at": str|null, "revoked_at": str|null}]')
@run_async
async def list_command(tenant_id: str, as_json: bool) -> None:
    """List the tenant's keys by prefix, newest first; never the keys themselves.

    Example: tenantry api-keys list --tenant acme
    """
    from core.api_keys import list_keys

    async with open_database() as db:
        found = await db.run(list_keys, tenant_id)
    if as_json:
        echo_json([{"prefix": k.prefix, "principal": k.principal_id,
                    "created_at": k.created_at, "created_by": k.created_by,
                    "last_used_at": k.last_used_at, "expires_at": k.expires_at,
                    "revoked_at": k.revoked_at} for k in found])
        return
    if not found:
        click.echo(f"tenant {tenant_id} has no API keys", err=True)
        return
    echo_table([("PREFIX", "PRINCIPAL", "CREATED", "LAST USED", "EXPIRES", "STATE")] + [
        (k.prefix, k.principal_id, when(k.created_at), when(k.last_used_at),
         when(k.expires_at) if k.expires_at else "never",
         "revoked" if k.revoked_at else "active") for k in found])


@api_keys_group.command("revoke")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
@click.argument("prefix")
@run_async
async def revoke(tenant_id: str, prefix: str) -> None:
    """Revoke the key PREFIX (as `list` shows it); it fails from the next request on.

    Example: tenantry api-keys revoke --tenant acme tnt_3f2a9c01b7de
    """
    async with open_admin() as admin:
        key = await admin.revoke_api_key(tenant_id, prefix)
    click.echo(f"key {key.prefix} of {key.principal_id} in tenant {tenant_id} is revoked")
