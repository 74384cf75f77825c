"""``tenantry tenants``: create, inspect, suspend, resume and purge tenants."""

from __future__ import annotations

from typing import Any

import click

from bots.cli_support import (
    LimitedText,
    column_length,
    echo_json,
    json_option,
    operator,
    root_settings,
    run_async,
)
from bots.runtime import Runtime, open_runtime
from core.admin import Admin
from core.db.schema import tenants as tenants_table
from core.prices import format_microcents
from core.tenants import Tenant, TenantStatus, list_tenants

TENANT_SHAPE = ('{"id": str, "name": str, "plan_id": str, "status": "active"|"suspended", '
                '"time_zone": str}')
SHOW_SHAPE = (TENANT_SHAPE[:-1] + ', "period": "YYYY-MM", "used": {"tokens": int, '
              '"cost_microcents": int, "tool_calls": int}, "allowance": {"tokens": int, '
              '"cost_microcents": int, "tool_calls": int}}')
_NAME = LimitedText(column_length(tenants_table.c.name))


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    """A tenant as ``--json`` prints it (see ``TENANT_SHAPE``)."""
    return {"id": tenant.id, "name": tenant.name, "plan_id": tenant.plan_id,
            "status": tenant.status, "time_zone": tenant.time_zone}


async def purge_everywhere(rt: Runtime, tenant_id: str, by: str) -> dict[str, int]:
    """Purge a tenant from the core and from every transport, in one transaction."""
    from bots.api.idempotency import purge_idempotency
    from bots.slack.records import purge_tenant as purge_slack_records
    from core.purge import purge_tenant
    from installs.purge import purge_workspaces
    from installs.teams_links import purge_teams

    return await purge_tenant(rt.db, rt.audit, rt.vector_admin, tenant_id, operator=by,
                              also=(purge_workspaces, purge_slack_records, purge_teams,
                                    purge_idempotency))


def admin_of(rt: Runtime) -> Admin:
    """The runtime's administrative actions, audited as the operator's."""
    return Admin(rt.db, rt.audit, rt.keyring, by=operator())


@click.group()
def tenants() -> None:
    """Create, inspect, suspend and resume tenants.

    Example: tenantry tenants show acme --json
    """


@tenants.command("create")
@click.argument("tenant_id")
@click.option("--name", required=True, type=_NAME, help="The customer's display name.")
@click.option("--plan", "plan_id", required=True, help="The plan the tenant is on.")
@click.option("--time-zone", default="UTC", show_default=True,
              help="IANA time zone: billing months and digests follow it.")
@json_option(TENANT_SHAPE)
@run_async
async def tenants_create(tenant_id: str, name: str, plan_id: str, time_zone: str,
                         as_json: bool) -> None:
    """Create tenant TENANT_ID on a plan.

    Example: tenantry tenants create acme --name "Acme Corp" --plan team
    --time-zone Europe/Paris
    """
    async with open_runtime(root_settings()) as rt:
        tenant = await admin_of(rt).create_tenant(
            tenant_id=tenant_id, name=name, plan_id=plan_id, time_zone=time_zone)
    if as_json:
        echo_json(tenant_json(tenant))
        return
    click.echo(f"tenant {tenant.id} ({tenant.name}) on plan {tenant.plan_id}: active")


@tenants.command("list")
@json_option(f"[{TENANT_SHAPE}]")
@run_async
async def tenants_list(as_json: bool) -> None:
    """List every tenant with its plan and status, tab-separated.

    Example: tenantry tenants list --json
    """
    async with open_runtime(root_settings()) as rt:
        found = await rt.db.run(list_tenants)
    if as_json:
        echo_json([tenant_json(t) for t in found])
        return
    for t in found:
        click.echo(f"{t.id}\t{t.name}\t{t.plan_id}\t{t.status}\t{t.time_zone}")


@tenants.command("show")
@click.argument("tenant_id")
@json_option(SHOW_SHAPE)
@run_async
async def tenants_show(tenant_id: str, as_json: bool) -> None:
    """Show a tenant and its usage this month against its plan's allowance.

    Example: tenantry tenants show acme
    """
    from core.budget.ledger import standing

    async with open_runtime(root_settings()) as rt:
        held = await rt.db.run(standing, tenant_id)
    t, plan, period = held.tenant, held.plan, held.period
    tokens, cost, calls = held.used
    if as_json:
        echo_json({**tenant_json(t), "period": period,
                   "used": {"tokens": tokens, "cost_microcents": cost, "tool_calls": calls},
                   "allowance": {"tokens": plan.monthly_tokens,
                                 "cost_microcents": plan.monthly_cost_microcents,
                                 "tool_calls": plan.monthly_tool_calls}})
        return
    click.echo(f"tenant {t.id} ({t.name}), plan {t.plan_id}, {t.status}, {t.time_zone}")
    click.echo(
        f"  {period}: {tokens}/{plan.monthly_tokens} tokens, "
        f"{format_microcents(cost)}/{format_microcents(plan.monthly_cost_microcents)}, "
        f"{calls}/{plan.monthly_tool_calls} tool calls"
    )


def _status_command(name: str, status: TenantStatus, doc: str) -> None:
    @tenants.command(name, help=doc)
    @click.argument("tenant_id")
    @run_async
    async def command(tenant_id: str) -> None:
        async with open_runtime(root_settings()) as rt:
            t = await admin_of(rt).set_status(tenant_id, status)
            click.echo(f"tenant {t.id}: {t.status}")


_status_command("suspend", "suspended", "Suspend TENANT_ID: its new runs are refused.\n\n"
                                        "Example: tenantry tenants suspend acme")
_status_command("resume", "active", "Resume TENANT_ID after a suspension.\n\n"
                                    "Example: tenantry tenants resume acme")


@tenants.command("purge")
@click.argument("tenant_id")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
@run_async
async def tenants_purge(tenant_id: str, yes: bool) -> None:
    """Delete everything TENANT_ID owns except its audit log, which records the purge.

    Example: tenantry tenants purge acme --yes
    """
    if not yes:
        raise click.UsageError("purging cannot be undone; add --yes to confirm")

    async with open_runtime(root_settings()) as rt:
        counts = await purge_everywhere(rt, tenant_id, operator())
        click.echo(f"tenant {tenant_id} purged and suspended: "
                   + ", ".join(f"{v} {k}" for k, v in counts.items()))
