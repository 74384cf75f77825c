"""``tenantry dev``: the local playground, and ``tenantry dev say`` to talk to it.

``tenantry dev`` runs until Ctrl-C and leaves ``playground.json`` (the page's URL) in
the data dir while it runs. ``tenantry dev say`` sends through that playground when
one answers there; when none runs it starts one in-process for the one message
(same database, a fresh stand-in) and stops it after printing the thread, so a
terminal alone is enough to try a tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from bots.dev.playground import Kind, Playground
    from core.settings import Settings

# Everything but click is imported inside the commands: `tenantry --help` must not pay
# for the server, the stand-in or aiohttp.
MARKER = "playground.json"
YOU = "you"


def _marker(settings: Settings) -> Path:
    return settings.data_dir / MARKER


def _check_port(host: str, port: int) -> None:
    """Fail before the slow start if the page's port is taken."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another with "
                "--port or TENANTRY_DEV_PORT") from None


def _quiet(settings: Settings) -> None:
    """The playground prints what to do; logs only for warnings unless a level was set."""
    from core.logs import configure

    if "log_level" not in settings.model_fields_set:
        configure("WARNING")


@click.group("dev", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface the page listens on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8808, show_default=True,
              envvar="TENANTRY_DEV_PORT", help="Port of the page (0: any free port).")
@click.pass_context
def dev(ctx: click.Context, host: str, port: int) -> None:
    """Run the local playground until Ctrl-C: the server on the embedded defaults, Slack
    played offline, a dev tenant whose plan licenses every registered tool, and a page
    to chat in.

    \b
    Example:
      tenantry dev                    # then open http://127.0.0.1:8808/
      tenantry dev say "Check budget.status"
    """
    if ctx.invoked_subcommand is not None:
        return
    from bots.cli_support import root_settings
    from core.errors import TenantryError

    settings = root_settings()
    _quiet(settings)
    _check_port(host, port)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(_serve(settings, host, port))
        except TenantryError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo("playground stopped")


async def _serve(settings: Settings, host: str, port: int) -> None:
    from bots.dev.page import serve_page
    from bots.dev.playground import open_playground

    async with open_playground(settings) as p, serve_page(p, host, port) as url:
        marker = _marker(settings)
        marker.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        try:
            _welcome(p, url)
            stop = asyncio.Event()
            # Ctrl-C cancels this task; SIGTERM (a supervisor's stop) ends it the same way.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
        finally:
            marker.unlink(missing_ok=True)


def _welcome(p: Playground, url: str) -> None:
    from sqlalchemy.engine import make_url

    settings = p.scenario.settings
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    [team] = p.workspaces
    click.echo(f"Tenantry playground: model {p.model}, database {database}\n"
               f"  tenant {p.tenant_id} on plan dev, licensed: {', '.join(p.capabilities)}\n"
               f"  workspace {team} installed and linked through Slack's OAuth flow "
               "(played offline)\n"
               f"Open {url} to chat as {YOU}, or from another terminal:\n"
               '  tenantry dev say "Check budget.status"\n'
               "Stop with Ctrl-C.", nl=True)
    sys.stdout.flush()


def _kind(channel: str, text: str) -> tuple[Kind, str]:
    if text.startswith("/ask "):
        return "command", text.removeprefix("/ask ")
    return ("message" if channel.startswith("D") else "mention"), text


@dev.command("say")
@click.argument("text")
@click.option("--channel", default=None,
              help="Where to write: the workspace's #general (default, as a mention) or the "
                   "direct message with the app (its id starts with D).")
@click.option("--thread", "thread_ts", default=None,
              help="Reply in this thread (the ts printed with an earlier answer).")
def say(text: str, channel: str | None, thread_ts: str | None) -> None:
    """Send TEXT in the playground as the dev user, wait for the answer, print the thread.
    Text starting with "/ask " is the slash command.

    \b
    Example:
      tenantry dev say "Check budget.status"
      tenantry dev say "/ask What did we spend this month?"
      tenantry dev say "and runs.status?" --thread 1767225600.000100
    """
    from bots.cli_support import root_settings
    from core.errors import TenantryError

    settings = root_settings()
    _quiet(settings)
    try:
        found = asyncio.run(_say(settings, text, channel, thread_ts))
    except TenantryError as exc:
        raise click.ClickException(str(exc)) from None
    root, thread = found
    if root is None:
        raise click.ClickException("nothing answered: the message started no thread")
    for message in thread:
        who = {"you": YOU, "app": "Tenantry", "ack": "(only you)"}[message["author"]]
        streaming = " (still streaming)" if message["state"] == "streaming" else ""
        click.echo(f"{who}{streaming}: " + message["text"].replace("\n", "\n  "))
        for button in message["buttons"]:
            click.echo(f"  [{button['label']}]")
    click.echo(f"thread {root}: reply with --thread {root}")


async def _say(settings: Settings, text: str, channel: str | None,
               thread_ts: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    import aiohttp

    from bots.dev.playground import open_playground

    url = _running(settings)
    if url is not None:
        # A playground that stopped without removing its marker (killed) answers nothing.
        with contextlib.suppress(aiohttp.ClientError):
            return await _say_remote(url, text, channel, thread_ts)
    click.echo("no playground is running; starting one for this message", err=True)
    async with open_playground(settings) as p:
        [team] = p.workspaces
        where = channel or p.workspace(team).channel
        kind, said = _kind(where, text)
        root, thread = await p.ask(team, where, kind, said, thread_ts)
        return root, [m.as_json() for m in thread]


def _running(settings: Settings) -> str | None:
    try:
        found = json.loads(_marker(settings).read_text())
    except (OSError, ValueError):
        return None
    return str(found["url"]) if isinstance(found, dict) and "url" in found else None


async def _say_remote(url: str, text: str, channel: str | None,
                      thread_ts: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        async with http.get(url + "api/state") as got:
            state = await got.json()
        workspace = state["workspaces"][0]
        where = channel or workspace["channels"][0]["id"]
        kind, said = _kind(where, text)
        body = {"team": workspace["team_id"], "channel": where, "kind": kind, "text": said,
                "thread_ts": thread_ts, "wait": True}
        async with http.post(url + "api/send", json=body) as sent:
            answer = await sent.json()
        if sent.status != 200:
            raise click.ClickException(str(answer.get("error", sent.reason)))
        return answer.get("thread_ts"), list(answer.get("thread", []))
