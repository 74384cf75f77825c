"""``tenantry credentials``: store, list and remove the credentials a tenant's tools use.

A secret is read from a hidden prompt or from stdin, never from the command line,
where it would land in shell history and in every process listing.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import click

from bots.cli_support import open_admin, root_settings, run_async
from core.credentials import CredentialStore
from core.crypto import Keyring
from core.db.engine import Database
from core.errors import InvalidInput
from core.settings import Settings


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[CredentialStore]:
    """The credential store of the deployment, its database disposed of afterwards."""
    keyring = Keyring.from_settings(settings)
    db = Database(settings.database_url)
    try:
        yield CredentialStore(db, keyring)
    finally:
        await db.dispose()


def read_secret(name: str) -> str:
    """The secret from a hidden, confirmed prompt on a terminal, else all of stdin.

    Only the final line break is dropped from stdin, so ``echo $TOKEN | ...`` and a
    file with a trailing newline both store exactly the token.
    """
    if sys.stdin.isatty():
        secret: str = click.prompt(
            f"Secret for {name}", hide_input=True, confirmation_prompt=True
        )
    else:
        secret = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not secret:
        raise InvalidInput(f"no secret given for {name!r} (type it, or pipe it on stdin)")
    return secret


@click.group()
def credentials() -> None:
    """Store, list and remove tenants' tool credentials (encrypted at rest).

    Example: tenantry credentials list --tenant acme
    """


@credentials.command("set")
@click.option("--tenant", "tenant_id", required=True, help="The tenant the credential is for.")
@click.argument("name")
@run_async
async def credentials_set(tenant_id: str, name: str) -> None:
    """Store or replace credential NAME; the secret is read from a prompt or stdin.

    Example: printf %s "$CRM_TOKEN" | tenantry credentials set --tenant acme crm_token
    """
    secret = read_secret(name)
    async with open_admin() as admin:
        await admin.set_credential(tenant_id, name, secret)
    click.echo(f"stored credential {name} for tenant {tenant_id}")


@credentials.command("list")
@click.option("--tenant", "tenant_id", required=True, help="The tenant whose credentials to list.")
@run_async
async def credentials_list(tenant_id: str) -> None:
    """List the names of a tenant's credentials (never their values).

    Example: tenantry credentials list --tenant acme
    """
    async with open_store(root_settings()) as store:
        names = await store.names(tenant_id)
    for name in names:
        click.echo(name)
    if not names:
        click.echo(f"tenant {tenant_id} has no credentials", err=True)


@credentials.command("delete")
@click.option("--tenant", "tenant_id", required=True, help="The tenant the credential is for.")
@click.argument("name")
@run_async
async def credentials_delete(tenant_id: str, name: str) -> None:
    """Delete credential NAME of a tenant; its tools stop working at once.

    Example: tenantry credentials delete --tenant acme crm_token
    """
    async with open_admin() as admin:
        await admin.remove_credential(tenant_id, name)
    click.echo(f"deleted credential {name} of tenant {tenant_id}")
