"""``tenantry --help`` answers without importing what only the commands need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bots.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "pydantic_ai", "anthropic", "slack_bolt", "aiohttp", "casbin",
         "microsoft_agents", "procrastinate", "apscheduler", "wordllama", "pydantic")


def test_the_root_help_imports_none_of_the_heavy_libraries() -> None:
    probe = ("import json, sys\nfrom bots.cli import main\nsys.argv = ['tenantry', '--help']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=120)
    assert "Commands:" in done.stdout and "tenants" in done.stdout
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert not [name for name in HEAVY if name in loaded]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_listed_command_loads_under_its_name(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command)
    assert command.name == name
    assert command.help and COMMANDS[name].short_help
