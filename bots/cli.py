"""The ``tenantry`` command line: operators' tools and the offline demo.

The outermost layer: it parses arguments, opens a runtime, calls ``core`` and prints.
Errors from the ``TenantryError`` tree become one clear line and exit status 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bots.cli_audit import audit
from bots.cli_credentials import credentials
from bots.cli_digests import clock, digests
from bots.cli_keys import keys
from bots.cli_memory import memory
from bots.cli_roles import roles
from bots.cli_slack import slack
from bots.cli_support import open_database, operator, root_settings, run_async
from bots.cli_teams import teams
from bots.dev.cli import dev
from bots.runtime import Runtime, open_runtime
from core.admin import Admin
from core.context import PrincipalKind
from core.db.migrate import current_revision, head_revision, upgrade
from core.errors import TenantryError
from core.logs import configure
from core.prices import format_microcents
from core.runs import find_run_tenant, get_run
from core.settings import Settings
from core.tenants import (
    DEFAULT_RETENTION_DAYS,
    PLAN_LIMITS,
    Plan,
    TenantStatus,
    create_plan,
    get_plan,
    list_plans,
    list_tenants,
)


@click.group()
@click.option("--database-url", envvar="TENANTRY_DATABASE_URL", default=None,
              help="SQLAlchemy URL of the app database (default: ./tenantry.db).")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """Tenantry: a multi-tenant agent platform for Slack and Microsoft Teams."""
    settings = Settings() if database_url is None else Settings(database_url=database_url)
    configure(settings.log_level)
    ctx.obj = settings


@cli.group()
def db() -> None:
    """Manage the app database schema."""


@db.command("upgrade")
@run_async
async def db_upgrade() -> None:
    """Apply every migration up to the newest; on PostgreSQL, install the job queue too."""
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
    """Show the database's revision and the newest one shipped."""
    async with open_database(any_revision=True) as database:
        click.echo(f"current: {await current_revision(database)}  head: {head_revision()}")


async def purge_everywhere(rt: Runtime, tenant_id: str, by: str) -> dict[str, int]:
    """Purge a tenant from the core and from every transport, in one transaction."""
    from bots.slack.records import purge_tenant as purge_slack_records
    from core.purge import purge_tenant
    from installs.purge import purge_workspaces
    from installs.teams_links import purge_teams

    return await purge_tenant(rt.db, rt.audit, rt.vector_admin, tenant_id, operator=by,
                              also=(purge_workspaces, purge_slack_records, purge_teams))


def admin_of(rt: Runtime) -> Admin:
    """The runtime's administrative actions, audited as the operator's."""
    return Admin(rt.db, rt.audit, rt.keyring, by=operator())


def _plan_lines(plan: Plan) -> list[str]:
    return [
        f"plan {plan.id}",
        f"  monthly: {plan.monthly_tokens} tokens, "
        f"{format_microcents(plan.monthly_cost_microcents)}, {plan.monthly_tool_calls} tool calls",
        f"  per run: {plan.run_tokens} tokens, {plan.run_tool_calls} tool calls, "
        f"{plan.run_walltime_ms} ms, {format_microcents(plan.run_cost_microcents)}",
        f"  capabilities: {', '.join(sorted(plan.capabilities)) or '(none)'}",
        f"  keeps run transcripts and conversations {plan.retention_days} days",
    ]


@cli.group()
def plans() -> None:
    """Create and change plans: monthly allowances, per-run ceilings, capabilities."""


_LIMIT_HELP = {
    "monthly_tokens": "Tokens a tenant may use per month.",
    "monthly_cost_microcents": "Model and tool cost per month, in microcents (1e-6 cent).",
    "monthly_tool_calls": "Tool calls per month.",
    "run_tokens": "Token ceiling of one run.",
    "run_tool_calls": "Tool-call ceiling of one run.",
    "run_walltime_ms": "Walltime ceiling of one run, in milliseconds.",
    "run_cost_microcents": "Cost ceiling of one run, in microcents.",
}


_RETENTION_HELP = "Days run transcripts and conversation turns are kept."


def _limit_options(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(PLAN_LIMITS):
            func = click.option(
                "--" + name.replace("_", "-"), name, type=click.IntRange(min=0),
                required=required, help=_LIMIT_HELP[name],
            )(func)
        return func

    return decorate


@plans.command("create")
@click.argument("plan_id")
@_limit_options(required=True)
@click.option("--capability", "capabilities", multiple=True,
              help="A licensed capability (repeatable), e.g. knowledge.search.")
@click.option("--retention-days", type=click.IntRange(min=1), default=DEFAULT_RETENTION_DAYS,
              show_default=True, help=_RETENTION_HELP)
@run_async
async def plans_create(plan_id: str, capabilities: tuple[str, ...], retention_days: int,
                       **limits: int) -> None:
    """Create plan PLAN_ID."""

    async with open_runtime(root_settings()) as rt:
        plan = await rt.db.run(create_plan, Plan(
            id=plan_id, capabilities=frozenset(capabilities), retention_days=retention_days,
            **limits))
        click.echo("\n".join(_plan_lines(plan)))


@plans.command("list")
@run_async
async def plans_list() -> None:
    """List every plan."""

    async with open_runtime(root_settings()) as rt:
        for plan in await rt.db.run(list_plans):
            click.echo("\n".join(_plan_lines(plan)))


@plans.command("show")
@click.argument("plan_id")
@run_async
async def plans_show(plan_id: str) -> None:
    """Show plan PLAN_ID."""

    async with open_runtime(root_settings()) as rt:
        click.echo("\n".join(_plan_lines(await rt.db.run(get_plan, plan_id))))


@plans.command("set")
@click.argument("plan_id")
@_limit_options(required=False)
@click.option("--capability", "capabilities", multiple=True,
              help="Replace the licensed capabilities with these (repeatable).")
@click.option("--retention-days", type=click.IntRange(min=1), default=None,
              help=_RETENTION_HELP)
@run_async
async def plans_set(plan_id: str, capabilities: tuple[str, ...], retention_days: int | None,
                    **limits: int | None) -> None:
    """Change limits, capabilities or retention of plan PLAN_ID; runs started later see
    the change."""

    async with open_runtime(root_settings()) as rt:
        plan = await admin_of(rt).update_plan(
            plan_id,
            limits={k: v for k, v in limits.items() if v is not None},
            capabilities=list(capabilities) if capabilities else None,
            retention_days=retention_days,
        )
        click.echo("\n".join(_plan_lines(plan)))


@cli.group()
def tenants() -> None:
    """Create, inspect, suspend and resume tenants."""


@tenants.command("create")
@click.argument("tenant_id")
@click.option("--name", required=True, help="The customer's display name.")
@click.option("--plan", "plan_id", required=True, help="The plan the tenant is on.")
@click.option("--time-zone", default="UTC", show_default=True,
              help="IANA time zone: billing months and digests follow it.")
@run_async
async def tenants_create(tenant_id: str, name: str, plan_id: str, time_zone: str) -> None:
    """Create tenant TENANT_ID on a plan."""

    async with open_runtime(root_settings()) as rt:
        tenant = await admin_of(rt).create_tenant(
            tenant_id=tenant_id, name=name, plan_id=plan_id, time_zone=time_zone)
        click.echo(f"tenant {tenant.id} ({tenant.name}) on plan {tenant.plan_id}: active")


@tenants.command("list")
@run_async
async def tenants_list() -> None:
    """List every tenant with its plan and status."""

    async with open_runtime(root_settings()) as rt:
        for t in await rt.db.run(list_tenants):
            click.echo(f"{t.id}\t{t.name}\t{t.plan_id}\t{t.status}\t{t.time_zone}")


@tenants.command("show")
@click.argument("tenant_id")
@run_async
async def tenants_show(tenant_id: str) -> None:
    """Show a tenant and its usage this month."""

    async with open_runtime(root_settings()) as rt:
        from core.budget.ledger import standing

        held = await rt.db.run(standing, tenant_id)
        t, plan, period = held.tenant, held.plan, held.period
        tokens, cost, calls = held.used
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


_status_command("suspend", "suspended", "Suspend TENANT_ID: its new runs are refused.")
_status_command("resume", "active", "Resume TENANT_ID after a suspension.")


def _print_outcome(outcome: Any) -> None:
    click.echo(f"run {outcome.run_id} ({outcome.tenant_id}, model {outcome.model}): "
               f"{outcome.status}")
    if outcome.answer:
        click.echo(outcome.answer)
    if outcome.halt:
        h = outcome.halt
        click.echo(f"halted: ceiling {h['ceiling']} (limit {h['limit']}, used {h['used']}); "
                   f"resume with: tenantry runs resume {outcome.run_id}")
    if outcome.error:
        click.echo(f"error: {outcome.error}")
    u = outcome.usage
    cached = (f" ({u.cache_read_tokens} read from / {u.cache_write_tokens} written to the "
              "prompt cache)" if u.cache_read_tokens or u.cache_write_tokens else "")
    click.echo(f"usage: {u.input_tokens} in{cached} / {u.output_tokens} out tokens, "
               f"{u.tool_calls} tool calls, {format_microcents(u.cost_microcents)}"
               + (f" (retried work: {u.retried_tokens} tokens, "
                  f"{format_microcents(u.retried_cost_microcents)})"
                  if u.retried_tokens or u.retried_tool_calls else ""))


@cli.command("run")
@click.option("--tenant", "tenant_id", required=True, help="The tenant the run is for.")
@click.option("--principal", "principal_id", required=True,
              help="Who the run acts on behalf of.")
@click.option("--principal-kind", type=click.Choice(["user", "service", "agent"]),
              default="service", show_default=True)
@click.option("--model", default=None,
              help="Model id; 'sandbox' is the offline deterministic model.")
@click.option("--role", "roles_", multiple=True,
              type=click.Choice(["owner", "admin", "member", "guest"]),
              help="A role the operator vouches for in this run only (repeatable); "
                   "otherwise the principal's granted roles apply.")
@click.argument("prompt")
@run_async
async def run_command(tenant_id: str, principal_id: str, principal_kind: PrincipalKind,
                      model: str | None, roles_: tuple[str, ...], prompt: str) -> None:
    """Run one agent run and print its outcome, usage and cost."""

    async with open_runtime(root_settings()) as rt:
        rt.models.check(model or rt.settings.model)
        grant = await rt.agent.open(tenant_id=tenant_id, principal_id=principal_id,
                                    principal_kind=principal_kind, initiator="user",
                                    extra_roles=roles_)
        _print_outcome(await rt.agent.start(grant, prompt, model=model))


@cli.group()
def runs() -> None:
    """Inspect and resume runs."""


@runs.command("resume")
@click.argument("run_id")
@run_async
async def runs_resume(run_id: str) -> None:
    """Resume a halted or interrupted run from its checkpoint, with a fresh budget."""

    async with open_runtime(root_settings()) as rt:
        tenant_id = await rt.db.run(find_run_tenant, run_id)
        grant = await rt.agent.reopen(tenant_id, run_id)
        _print_outcome(await rt.agent.resume(grant))


@runs.command("show")
@click.argument("run_id")
@run_async
async def runs_show(run_id: str) -> None:
    """Show a run's status, outcome and usage."""

    async with open_runtime(root_settings()) as rt:
        r = await rt.db.run(get_run, await rt.db.run(find_run_tenant, run_id), run_id)
        click.echo(f"run {r.id} ({r.tenant_id}, {r.principal_id}, model {r.model}): {r.status}")
        click.echo(f"  {r.input_tokens} in / {r.output_tokens} out tokens, {r.tool_calls} tool "
                   f"calls, {format_microcents(r.cost_microcents)}, attempts {r.attempts}")
        if r.detail:
            click.echo(f"  {r.detail}")


@cli.command("serve")
@click.option("--host", default=None, help="Interface to listen on (TENANTRY_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on (TENANTRY_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the transports (Slack, Teams, health check, metrics): on SQLite with the
    in-process executor, on PostgreSQL queuing runs for `tenantry worker`.

    \b
    Settings that matter (environment or .env; all of them in docs/deploy.md):
      Slack     TENANTRY_SLACK_SIGNING_SECRET, TENANTRY_SLACK_CLIENT_ID,
                TENANTRY_SLACK_CLIENT_SECRET (all three, or Slack is off),
                TENANTRY_SLACK_API_URL (a gateway or stand-in)
      Teams     TENANTRY_TEAMS_APP_ID, TENANTRY_TEAMS_APP_PASSWORD,
                TENANTRY_TEAMS_APP_TENANT_ID
      model     TENANTRY_MODEL (default anthropic:claude-sonnet-4-5; sandbox is
                offline), TENANTRY_ANTHROPIC_API_KEY
      database  TENANTRY_DATABASE_URL (default sqlite:///tenantry.db); run
                `tenantry db upgrade` first
      server    TENANTRY_PUBLIC_URL (the https URL Slack and Teams call),
                TENANTRY_HOST, TENANTRY_PORT

    \b
    Example:
      TENANTRY_PUBLIC_URL=https://tenantry.example.com \\
      TENANTRY_SLACK_SIGNING_SECRET=... TENANTRY_SLACK_CLIENT_ID=... \\
      TENANTRY_SLACK_CLIENT_SECRET=... TENANTRY_ANTHROPIC_API_KEY=... \\
      tenantry serve --port 3000
    """
    from bots.serving import run_app
    from bots.settings import ServerSettings
    from bots.web import create_app

    # The listening address decides what the app allows (anonymous Teams only on loopback).
    server = ServerSettings().model_copy(update={
        name: value for name, value in (("host", host), ("port", port)) if value is not None})
    try:
        app = create_app(root_settings(), server)
        run_app(app, host=server.host, port=server.port, print=lambda text: click.echo(text))
    except TenantryError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("worker")
@click.option("--concurrency", type=int, default=None,
              help="Jobs executed at once (TENANTRY_WORKER_CONCURRENCY).")
def worker(concurrency: int | None) -> None:
    """Execute the queued runs (PostgreSQL), beside the web processes; stop with SIGTERM."""
    import asyncio

    from bots.settings import WorkerSettings
    from bots.worker import work

    settings = WorkerSettings()
    if concurrency is not None:
        settings = settings.model_copy(update={"concurrency": concurrency})
    try:
        asyncio.run(work(root_settings(), settings))
    except TenantryError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("demo")
def demo() -> None:
    """Run the offline demo: two tenants, the sandbox model, a halt and a resume."""
    from bots.demo import main as demo_main

    raise SystemExit(demo_main())


@tenants.command("purge")
@click.argument("tenant_id")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
@run_async
async def tenants_purge(tenant_id: str, yes: bool) -> None:
    """Delete everything TENANT_ID owns except its audit log, which records the purge."""
    if not yes:
        raise click.UsageError("purging cannot be undone; add --yes to confirm")

    async with open_runtime(root_settings()) as rt:
        counts = await purge_everywhere(rt, tenant_id, operator())
        click.echo(f"tenant {tenant_id} purged and suspended: "
                   + ", ".join(f"{v} {k}" for k, v in counts.items()))


for group in (audit, clock, credentials, dev, digests, keys, memory, roles, slack, teams):
    cli.add_command(group)


def main() -> None:
    """Console-script entry point."""
    cli()
