"""``tenantry dev`` and ``tenantry dev say`` from a terminal, in a scratch folder."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from bots.cli import cli
from bots.slack import render


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A folder with no playground running and no database yet: the embedded defaults."""
    monkeypatch.chdir(tmp_path)
    for name in ("TENANTRY_DATABASE_URL", "TENANTRY_MODEL", "TENANTRY_DATA_DIR",
                 "TENANTRY_CAPABILITY_MODULES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENANTRY_EMBEDDER", "hashing")
    return CliRunner()


def test_say_without_a_playground_starts_one_and_prints_the_thread(
    scratch: CliRunner, tmp_path: Path,
) -> None:
    done = scratch.invoke(cli, ["dev", "say", "Check budget.status"])

    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0] == "you: @Tenantry Check budget.status"
    assert lines[1] == "Tenantry: [sandbox model: offline, deterministic]"
    assert any(line.startswith("  - budget.status: {") for line in lines)
    assert lines[-1].startswith("thread ") and "reply with --thread" in lines[-1]
    assert "no playground is running" in done.stderr
    assert (tmp_path / ".tenantry" / "playground.db").is_file()


def test_say_replies_in_a_thread_and_in_the_direct_message(scratch: CliRunner) -> None:
    first = scratch.invoke(cli, ["dev", "say", "hello"])
    thread = first.stdout.splitlines()[-1].split()[1]
    reply = scratch.invoke(cli, ["dev", "say", "and again", "--thread", thread])
    dm = scratch.invoke(cli, ["dev", "say", "hi", "--channel", "DT0DEV"])

    assert reply.exit_code == 0, reply.output
    assert "You asked: and again" in reply.stdout
    assert reply.stdout.splitlines()[-1] == f"thread {thread}: reply with --thread {thread}"
    assert dm.exit_code == 0, dm.output
    assert dm.stdout.startswith("you: hi\nTenantry: [sandbox model")


def test_say_slash_command(scratch: CliRunner) -> None:
    done = scratch.invoke(cli, ["dev", "say", "/ask Check budget.status"])

    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"(only you): {render.ACK_WORKING}\n"
                                  "Tenantry: @U0YOU asked: Check budget.status\n")
    assert "- budget.status:" in done.stdout


def test_say_to_an_unknown_channel_is_one_line(scratch: CliRunner) -> None:
    done = scratch.invoke(cli, ["dev", "say", "hello", "--channel", "C0NOPE"])

    assert done.exit_code == 1
    assert done.stderr.splitlines()[-1] == ("Error: no channel 'C0NOPE' in T0DEV; known: "
                                            "CT0DEV, DT0DEV")


def test_a_taken_port_is_one_line_before_anything_starts(scratch: CliRunner,
                                                        tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = scratch.invoke(cli, ["dev", "--port", str(port)])

    assert done.exit_code == 1
    assert done.stderr.strip() == (f"Error: cannot listen on 127.0.0.1:{port} (Address already "
                                   "in use); choose another with --port or TENANTRY_DEV_PORT")
    assert not (tmp_path / ".tenantry").exists()


def test_help_says_what_it_does_with_an_example(scratch: CliRunner) -> None:
    for args in (["dev", "--help"], ["dev", "say", "--help"]):
        done = scratch.invoke(cli, args)
        assert done.exit_code == 0
        assert "Example:" in done.stdout and "tenantry dev say" in done.stdout
