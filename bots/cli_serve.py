"""``tenantry serve``, ``tenantry worker`` and ``tenantry demo``: the long-running
processes of a deployment, and the offline demo."""

from __future__ import annotations

import errno

import click

from bots.cli_errors import one_line_errors
from bots.cli_support import database_url, root_settings

_PORT = click.IntRange(0, 65535)
"""Port 0: any free port, which the server prints."""


@click.command("serve")
@click.option("--host", default=None, help="Interface to listen on (TENANTRY_HOST).")
@click.option("--port", type=_PORT, default=None, help="Port to listen on (TENANTRY_PORT).")
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

    with one_line_errors(database_url()):
        # The listening address decides what the app allows (anonymous Teams only on
        # loopback).
        server = ServerSettings().model_copy(update={
            name: value for name, value in (("host", host), ("port", port))
            if value is not None})
        app = create_app(root_settings(), server)
        try:
            run_app(app, host=server.host, port=server.port,
                    print=lambda text: click.echo(text))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise click.ClickException(
                f"port {server.port} on {server.host} is already in use: stop what listens "
                "there or choose another with --port or TENANTRY_PORT") from None


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Jobs executed at once (TENANTRY_WORKER_CONCURRENCY).")
def worker(concurrency: int | None) -> None:
    """Execute the queued runs (PostgreSQL), beside the web processes; stop with SIGTERM.

    Example: TENANTRY_DATABASE_URL=postgresql+psycopg://tenantry@db/tenantry tenantry worker
    """
    import asyncio

    from bots.settings import WorkerSettings
    from bots.worker import work

    with one_line_errors(database_url()):
        settings = WorkerSettings()
        if concurrency is not None:
            settings = settings.model_copy(update={"concurrency": concurrency})
        asyncio.run(work(root_settings(), settings))


@click.command("demo")
def demo() -> None:
    """Run the offline demo: two tenants, the sandbox model, a halt and a resume.

    Example: tenantry demo
    """
    from bots.demo import main as demo_main

    raise SystemExit(demo_main())
