"""The package layers: imports point down, core knows no transport, stand-ins stay out.

``bots`` -> ``installs`` -> ``core``, never upward; ``core`` imports no web framework or
chat SDK, so a new transport can reuse it untouched. The offline stand-ins are for
the demo, the development commands, benchmarks and tests: no production module may
import them, directly or through another module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODULES = {"bots.demo", "bots.demo_clients", "bots.demo_slack", "bots.demo_teams",
                "bots.dev.playground",
                "bots.dev.shown"}
"""The production modules allowed to use the stand-ins: they run the offline demo and the
local playground (``tenantry dev``)."""


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _top(name: str) -> str:
    return name.split(".", 1)[0]


@pytest.mark.parametrize(("package", "forbidden"), [
    ("core", {"aiohttp", "slack_bolt", "slack_sdk", "microsoft_agents", "bots", "installs",
              "standins", "procrastinate", "prometheus_client"}),
    ("installs", {"bots", "slack_bolt", "standins"}),
])
def test_lower_layers_import_nothing_above_them(package: str, forbidden: set[str]) -> None:
    crossing = {
        f"{module} imports {name}"
        for module, path in _modules(package).items()
        for name in _imports(path)
        if _top(name) in forbidden
    }
    assert not crossing


def test_no_production_module_imports_the_stand_ins() -> None:
    production = {**_modules("core"), **_modules("installs"), **_modules("bots")}
    offenders = {
        module for module, path in production.items()
        if module not in DEMO_MODULES and any(_top(n) == "standins" for n in _imports(path))
    }
    assert not offenders


def test_serving_and_the_cli_load_no_stand_in() -> None:
    """Transitively too: importing the server and the CLI loads no stand-in module."""
    probe = (
        "import sys, bots.web, bots.cli, bots.runtime\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'standins'))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
