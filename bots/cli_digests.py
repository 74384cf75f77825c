"""``tenantry digests``: a tenant's scheduled prompts; ``tenantry clock``: the clock alone.

A digest's cron is read in the tenant's time zone; its destination must be a channel
of a workspace linked to the tenant, or a Teams conversation the bot was already
served in for it. Every change is recorded in the tenant's audit log with the operator.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

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
from bots.runtime import Runtime
from core.digests.destinations import Destination, SlackDestination, TeamsDestination
from core.digests.records import Digest, find_digest, list_digests
from core.digests.schedule import next_after, trigger
from core.errors import InvalidInput
from core.tenants import get_tenant
from installs.destinations import destination_problem

if TYPE_CHECKING:
    from bots.clock import Fire

_TENANT_HELP = "The tenant the digest belongs to."
PROBLEMS = {
    "not_linked": "is not linked to tenant {tenant}",
    "link_revoked": "was unlinked from tenant {tenant}",
    "conversation_unknown": "has not been seen by the bot for tenant {tenant} yet: send the "
                            "bot a message there first",
}


@click.group()
def digests() -> None:
    """Add, list, pause, resume and remove a tenant's scheduled digests.

    Example: tenantry digests list --tenant acme --json
    """


def _destination(slack_channel: str | None, team: str | None, enterprise: str | None,
                 teams_conversation: str | None, entra_tenant: str | None) -> Destination:
    if slack_channel and team and not (teams_conversation or entra_tenant):
        return SlackDestination(team_id=team, channel=slack_channel, enterprise_id=enterprise)
    if teams_conversation and entra_tenant and not (slack_channel or team or enterprise):
        return TeamsDestination(entra_tenant_id=entra_tenant, conversation_id=teams_conversation)
    raise click.UsageError("give a destination: --slack-channel C --team T, or "
                           "--teams-conversation ID --entra-tenant E")


DIGEST_SHAPE = ('{"id": str, "name": str, "cron": str, "time_zone": str, '
                '"status": "active"|"paused", "paused_reason": str|null, "destination": '
                '{"kind": "slack"|"teams", ...}, "last_fired_at": ISO 8601|null, '
                '"next_fire_at": ISO 8601|null, "prompt": str}')


def digest_json(digest: Digest, zone: ZoneInfo) -> dict[str, Any]:
    """A digest as ``--json`` prints it (see ``DIGEST_SHAPE``)."""
    upcoming = next_after(trigger(digest.cron, zone), datetime.now(UTC))
    return {"id": digest.id, "name": digest.name, "cron": digest.cron, "time_zone": zone.key,
            "status": digest.status, "paused_reason": digest.paused_reason,
            "destination": digest.destination.as_json(), "last_fired_at": digest.last_fired_at,
            "next_fire_at": upcoming if digest.active else None, "prompt": digest.prompt}


def _lines(digest: Digest, zone: ZoneInfo) -> list[str]:
    upcoming = next_after(trigger(digest.cron, zone), datetime.now(UTC))
    state = digest.status + (f" ({digest.paused_reason})" if digest.paused_reason else "")
    return [
        f"digest {digest.id} ({digest.name}): {state}",
        f"  cron: {digest.cron} ({zone.key})",
        f"  to: {digest.destination.describe()}",
        f"  last fired: {when(digest.last_fired_at)}; next: "
        f"{when(upcoming) if digest.active else '-'}",
        f"  prompt: {digest.prompt}",
    ]


@digests.command("add")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
@click.option("--name", required=True, help="A name, unique in the tenant.")
@click.option("--cron", required=True,
              help="Five fields in the tenant's time zone, weekdays by name: '30 8 * * mon-fri'.")
@click.option("--prompt", required=True, help="What the digest asks, each time it fires.")
@click.option("--slack-channel", help="A Slack channel id (C...) to post into.")
@click.option("--team", help="The Slack workspace (T...) of that channel.")
@click.option("--enterprise", help="The Enterprise Grid org (E...) of that workspace, if any.")
@click.option("--teams-conversation", help="A Teams conversation id to post into.")
@click.option("--entra-tenant", help="The Microsoft 365 organisation of that conversation.")
@run_async
async def digests_add(tenant_id: str, name: str, cron: str, prompt: str,
                      slack_channel: str | None, team: str | None, enterprise: str | None,
                      teams_conversation: str | None, entra_tenant: str | None) -> None:
    """Add a digest: PROMPT runs on CRON and its answer is posted to the destination.

    Example: tenantry digests add --tenant acme --name morning --cron '30 8 * * mon-fri'
    --prompt "Summarise yesterday's usage" --slack-channel C0123 --team T0123
    """
    destination = _destination(slack_channel, team, enterprise, teams_conversation,
                               entra_tenant)
    async with open_admin() as admin:
        problem = await admin.db.run(destination_problem, tenant_id, destination)
        if problem is not None:
            raise InvalidInput(f"{destination.describe()} "
                               + PROBLEMS[problem].format(tenant=tenant_id))
        digest = await admin.add_digest(tenant_id, name=name, cron=cron, prompt=prompt,
                                        destination=destination)
        zone = (await admin.db.run(get_tenant, tenant_id)).zone
    click.echo("\n".join(_lines(digest, zone)))


@digests.command("list")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
@json_option(f"[{DIGEST_SHAPE}]")
@run_async
async def digests_list(tenant_id: str, as_json: bool) -> None:
    """List the tenant's digests.

    Example: tenantry digests list --tenant acme
    """
    async with open_database() as db:
        zone = (await db.run(get_tenant, tenant_id)).zone
        found = await db.run(list_digests, tenant_id)
    if as_json:
        echo_json([digest_json(d, zone) for d in found])
        return
    if not found:
        click.echo(f"tenant {tenant_id} has no digests", err=True)
        return
    rows = [("ID", "NAME", "CRON", "STATUS", "TO", "LAST FIRED")]
    rows += [(d.id, d.name, d.cron, d.status + (f" ({d.paused_reason})" if d.paused_reason
                                                else ""),
              d.destination.describe(), when(d.last_fired_at)) for d in found]
    echo_table(rows)
    click.echo(f"(cron read in {zone.key})", err=True)


@digests.command("show")
@click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
@click.argument("digest")
@json_option(DIGEST_SHAPE)
@run_async
async def digests_show(tenant_id: str, digest: str, as_json: bool) -> None:
    """Show DIGEST (its id or name): schedule, destination, next firing, prompt.

    Example: tenantry digests show --tenant acme morning --json
    """
    async with open_database() as db:
        found = await db.run(find_digest, tenant_id, digest)
        zone = (await db.run(get_tenant, tenant_id)).zone
    if as_json:
        echo_json(digest_json(found, zone))
        return
    click.echo("\n".join(_lines(found, zone)))


def _change_command(name: str, doc: str) -> None:
    @digests.command(name, help=doc)
    @click.option("--tenant", "tenant_id", metavar="TENANT", required=True, help=_TENANT_HELP)
    @click.argument("digest")
    @run_async
    async def command(tenant_id: str, digest: str) -> None:
        async with open_admin() as admin:
            found = await admin.db.run(find_digest, tenant_id, digest)
            if name == "remove":
                await admin.remove_digest(tenant_id, found.id)
                click.echo(f"digest {found.id} ({found.name}) removed")
                return
            change = admin.pause_digest if name == "pause" else admin.resume_digest
            changed = await change(tenant_id, found.id)
        state = "paused" if name == "pause" else "active"
        click.echo(f"digest {found.id} ({found.name}): {state}"
                   + ("" if changed else " (it already was)"))


_change_command("pause", "Pause DIGEST (id or name): it does not fire until resumed.\n\n"
                         "Example: tenantry digests pause --tenant acme morning")
_change_command("resume", "Resume DIGEST (id or name): it fires from its next time on; "
                          "what it missed while paused is not made up.\n\n"
                          "Example: tenantry digests resume --tenant acme morning")
_change_command("remove", "Remove DIGEST (id or name); its past runs and audit events stay."
                          "\n\nExample: tenantry digests remove --tenant acme morning")


async def run_clock(rt: Runtime, stop: asyncio.Event, reload_s: float,
                    fire: Fire | None = None) -> None:
    """The clock on its own until ``stop``: each firing goes to ``fire`` (a queue's
    ``enqueue_firings``), or, without one, to ``fire_digest`` in this process.

    Only the callback acts; the clock itself reads schedules and nothing else.
    """
    from bots.clock import DigestClock
    from bots.digests import fire_digest

    async def fire_here(tenant_id: str, digest_id: str, fire_time: datetime) -> None:
        await fire_digest(rt, tenant_id, digest_id, fire_time)

    async with DigestClock(rt.db, fire or fire_here,
                           grace=timedelta(seconds=rt.settings.digest_grace_s),
                           reload_s=reload_s) as clock:
        click.echo(f"clock running: {len(clock.entries)} digests scheduled, "
                   f"{'queued for the workers' if fire else 'fired in this process'}",
                   err=True)
        await stop.wait()


@click.command("clock")
def clock() -> None:
    """Run the digest clock alone (the Procfile's clock process) until SIGINT or SIGTERM.

    On PostgreSQL it only queues each firing for \b tenantry worker; on SQLite it fires
    them itself. Run one per deployment; a second one started by mistake fires nothing
    twice.

    Example: TENANTRY_DATABASE_URL=postgresql+psycopg://... tenantry clock
    """
    from bots.jobs.digest import enqueue_firings
    from bots.runtime import open_runtime
    from bots.settings import ServerSettings
    from bots.slack.settings import SlackSettings
    from bots.teams.settings import TeamsSettings
    from bots.web import on_workers, open_queue
    from bots.worker import attach_delivery

    async def main() -> None:
        settings, server = root_settings(), ServerSettings()
        queued = on_workers(settings, server)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with (open_runtime(settings) as rt,
                    open_queue(settings, server.runs_per_tenant, queued) as queue):
            if queue is None:
                attach_delivery(rt, SlackSettings(), TeamsSettings())
            await run_clock(rt, stop, server.digest_reload_s,
                            None if queue is None else enqueue_firings(queue))

    run_async(main)()
