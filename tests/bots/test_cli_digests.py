"""``tenantry digests`` as an operator uses it, on the test database with two tenants."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from click.testing import CliRunner, Result
from sqlalchemy import update

from bots.cli_digests import digests
from core.audit.log import recent_events
from core.db.engine import Database
from core.digests.records import list_digests
from core.settings import Settings
from installs.links import link
from installs.teams_conversations import remember_conversation
from installs.teams_links import record_pending, resolve_teams, teams_tenants

ENTRA = "0a1b2c3d-0000-4000-8000-00000000e001"


def invoke(settings: Settings, group: click.Group, *args: str) -> Result:
    return CliRunner().invoke(group, list(args), obj=settings)


def on_db(settings: Settings, work: Any, *args: Any) -> Any:
    async def call() -> Any:
        db = Database(settings.database_url)
        try:
            return await db.run(work, *args)
        finally:
            await db.dispose()

    return asyncio.run(call())


def add(settings: Settings, *extra: str, name: str = "Morning") -> Result:
    return invoke(settings, digests, "add", "--tenant", "acme", "--name", name,
                  "--cron", "30 8 * * mon-fri", "--prompt", "What happened yesterday?", *extra)


def test_add_list_show_pause_resume_remove(tenants: Settings) -> None:
    on_db(tenants, link, None, "T1", "acme", "U1")

    added = add(tenants, "--slack-channel", "C1", "--team", "T1")
    assert added.exit_code == 0, added.output
    assert "(Morning): active" in added.stdout and "slack channel C1 in T1" in added.stdout
    [digest] = on_db(tenants, list_digests, "acme")

    listed = invoke(tenants, digests, "list", "--tenant", "acme")
    assert digest.id in listed.stdout and "30 8 * * mon-fri" in listed.stdout
    assert "no digests" in invoke(tenants, digests, "list", "--tenant", "globex").stderr
    shown = invoke(tenants, digests, "show", "--tenant", "acme", "Morning")
    assert "prompt: What happened yesterday?" in shown.stdout and "next: " in shown.stdout

    assert invoke(tenants, digests, "pause", "--tenant", "acme", digest.id).stdout.endswith(
        ": paused\n")
    assert "already was" in invoke(tenants, digests, "pause", "--tenant", "acme",
                                   "Morning").stdout
    assert "paused (operator)" in invoke(tenants, digests, "list", "--tenant", "acme").stdout
    assert ": active" in invoke(tenants, digests, "resume", "--tenant", "acme",
                                "Morning").stdout
    # Another tenant cannot see or change it.
    other = invoke(tenants, digests, "pause", "--tenant", "globex", digest.id)
    assert other.exit_code == 1 and "no digest" in other.output
    assert "removed" in invoke(tenants, digests, "remove", "--tenant", "acme", "Morning").stdout
    assert on_db(tenants, list_digests, "acme") == []

    def logged(conn: Any) -> list[tuple[str, str]]:
        return [(e.event, e.fields["by"]) for e in reversed(recent_events(conn, "acme", 20))
                if e.event.startswith("digest.")]

    names = on_db(tenants, logged)
    assert [n for n, _ in names] == ["digest.added", "digest.paused", "digest.resumed",
                                     "digest.removed"]
    assert all(by.startswith("cli") for _, by in names)


def test_a_destination_must_be_the_tenants_own(tenants: Settings) -> None:
    on_db(tenants, link, None, "T2", "globex", "U1")

    unlinked = add(tenants, "--slack-channel", "C1", "--team", "T1")
    other = add(tenants, "--slack-channel", "C1", "--team", "T2")
    neither = add(tenants)
    both = add(tenants, "--slack-channel", "C1", "--team", "T1", "--teams-conversation", "19:x")
    bad_cron = add(tenants, "--slack-channel", "C1", "--team", "T1", name="x")

    for result in (unlinked, other):
        assert result.exit_code == 1 and "is not linked to tenant acme" in result.output
    for result in (neither, both):
        assert result.exit_code == 2 and "give a destination" in result.output
    assert bad_cron.exit_code == 1
    assert on_db(tenants, list_digests, "acme") == []


def test_a_teams_destination_needs_a_conversation_the_bot_was_served_in(
        tenants: Settings) -> None:
    def activate(conn: Any) -> None:
        # As a redeemed link code leaves it (installs.teams_links has its own tests).
        record_pending(conn, ENTRA)
        conn.execute(update(teams_tenants).where(teams_tenants.c.entra_tenant_id == ENTRA)
                     .values(status="active", tenant_id="acme"))

    on_db(tenants, activate)
    assert on_db(tenants, resolve_teams, ENTRA).active
    teams = ("--teams-conversation", "19:room@thread.tacv2", "--entra-tenant", ENTRA)

    unseen = add(tenants, *teams)
    assert unseen.exit_code == 1 and "send the bot a message there first" in unseen.output
    on_db(tenants, remember_conversation, "acme", ENTRA, "19:room@thread.tacv2", {"x": 1})
    added = add(tenants, *teams)
    assert added.exit_code == 0, added.output
    assert "teams conversation 19:room@thread.tacv2" in added.stdout


async def test_the_clock_command_runs_until_told_to_stop(tenants: Settings) -> None:
    from bots.cli_digests import run_clock
    from bots.runtime import open_runtime
    from bots.slack.settings import SlackSettings
    from bots.teams.settings import TeamsSettings
    from bots.worker import attach_delivery

    stop = asyncio.Event()
    async with open_runtime(tenants.model_copy(update={"embedder": "hashing"})) as rt:
        attach_delivery(rt, SlackSettings(), TeamsSettings())
        running = asyncio.create_task(run_clock(rt, stop, reload_s=0.05))
        await asyncio.sleep(0.2)
        assert not running.done()
        stop.set()
        await asyncio.wait_for(running, timeout=5)


def test_the_clock_and_digests_are_tenantry_commands() -> None:
    from bots.cli import cli

    listed = CliRunner().invoke(cli, ["--help"]).stdout
    assert "clock" in listed and "digests" in listed
