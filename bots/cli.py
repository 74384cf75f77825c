"""The ``tenantry`` command line: operators' tools and the offline demo.

The outermost layer: it parses arguments, opens a runtime, calls ``core`` and prints.
Errors become one clear line and exit status 1 (``bots.cli_errors``). Each command
lives in a ``bots.cli_*`` module imported only when it is used, so ``tenantry --help``
answers at once; the one-line helps below are the ones its listing shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bots.cli_lazy import LazyCommand, LazyGroup

if TYPE_CHECKING:
    from core.logs import LogFormat

COMMANDS = {
    "api-keys": LazyCommand("bots.cli_api_keys:api_keys_group",
                            "Create, list and revoke a tenant's API keys (HTTP API, MCP)."),
    "audit": LazyCommand("bots.cli_audit:audit",
                         "Check and export tenants' tamper-evident audit logs."),
    "clock": LazyCommand("bots.cli_digests:clock",
                         "Run the digest clock alone (the Procfile's clock process)."),
    "credentials": LazyCommand("bots.cli_credentials:credentials",
                               "Store, list and remove the credentials a tenant's tools use."),
    "db": LazyCommand("bots.cli_db:db", "Manage the app database schema."),
    "demo": LazyCommand("bots.cli_serve:demo",
                        "Run the offline demo: two tenants, the sandbox model."),
    "dev": LazyCommand("bots.dev.cli:dev", "Run the local playground: the server, Slack "
                       "played offline, a page to chat in."),
    "digests": LazyCommand("bots.cli_digests:digests",
                           "Add, list, pause, resume and remove a tenant's digests."),
    "keys": LazyCommand("bots.cli_keys:keys",
                        "Generate and rotate the encryption keys of stored secrets."),
    "memory": LazyCommand("bots.cli_memory:memory",
                          "Manage a tenant's documents (its vector memory)."),
    "plans": LazyCommand("bots.cli_plans:plans",
                         "Create and change plans: allowances, ceilings, capabilities."),
    "roles": LazyCommand("bots.cli_roles:roles",
                         "Grant, revoke and list principals' roles in a tenant."),
    "run": LazyCommand("bots.cli_runs:run_command",
                       "Run one agent run and print its outcome, usage and cost."),
    "runs": LazyCommand("bots.cli_runs:runs", "Inspect and resume runs."),
    "serve": LazyCommand("bots.cli_serve:serve",
                         "Serve the transports (Slack, Teams, health check, metrics)."),
    "slack": LazyCommand("bots.cli_slack:slack", "Link Slack workspaces to tenants."),
    "teams": LazyCommand("bots.cli_teams:teams",
                         "Link Microsoft 365 organisations to tenants; build the app."),
    "tenants": LazyCommand("bots.cli_tenants:tenants",
                           "Create, inspect, suspend and resume tenants."),
    "worker": LazyCommand("bots.cli_serve:worker",
                          "Execute the queued runs (PostgreSQL), beside the web processes."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.option("--database-url", envvar="TENANTRY_DATABASE_URL", default=None,
              help="SQLAlchemy URL of the app database (default: ./tenantry.db).")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]), default="auto",
              envvar="TENANTRY_LOG_FORMAT", show_default=True,
              help="Logs (on stderr) as JSON lines, or readable lines; auto: JSON unless "
                   "stderr is a terminal (TENANTRY_LOG_FORMAT).")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, log_format: LogFormat) -> None:
    """Tenantry: a multi-tenant agent platform for Slack and Microsoft Teams.

    Command output goes to stdout, logs to stderr. Every command's --help has an
    example; commands that print data take --json.

    Example: tenantry tenants list --json
    """
    from bots.cli_errors import load_settings
    from core.logs import configure

    settings = load_settings(database_url)
    configure(settings.log_level, log_format)
    ctx.obj = settings


def main() -> None:
    """Console-script entry point."""
    cli()
