"""The README's "Write your own tool", followed as a newcomer would, step by step.

The test reads the section's code blocks and runs them as written, in a scratch folder
beside a link to this checkout's ``.venv``: it saves the Python file the section shows
under the name it gives, runs the ``export`` and ``tenantry dev`` in one shell (in the
background, as a first terminal), the ``tenantry dev say`` in another, and expects the
transcript the section prints. The one thing it adds is ``TENANTRY_DEV_PORT=0``, so
the page takes a free port instead of the documented one that another run may hold.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SECTION = "## Write your own tool"
BASH = shutil.which("bash") or "/bin/bash"
_BLOCK = re.compile(r"^(?P<indent> *)```(?P<lang>\w+)\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)


def section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(SECTION)
    end = readme.index("\n## ", start + len(SECTION))
    return readme[start:end]


def blocks(text: str) -> list[tuple[str, str, int]]:
    """Each code block as (language, body without its list indent, where it starts)."""
    found = []
    for match in _BLOCK.finditer(text):
        indent = len(match["indent"])
        body = "\n".join(line[indent:] for line in match["body"].splitlines())
        found.append((match["lang"], body + "\n", match.start()))
    return found


def newcomer_env(folder: Path) -> dict[str, str]:
    """A shell with none of this test run's Tenantry settings, and no model key."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TENANTRY_") and k not in ("ANTHROPIC_API_KEY", "PYTHONPATH")}
    return env | {"TENANTRY_DEV_PORT": "0", "PWD": str(folder)}


def wait_for_page(folder: Path, first: subprocess.Popen[str]) -> None:
    marker = folder / ".tenantry" / "playground.json"
    deadline = time.monotonic() + 120
    while not marker.is_file():
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            raise AssertionError(f"tenantry dev did not start: {first.communicate()}")
        time.sleep(0.2)
    assert json.loads(marker.read_text())["url"].startswith("http://127.0.0.1:")


def test_the_readme_steps_answer_with_your_own_tool(tmp_path: Path) -> None:
    text = section()
    code = blocks(text)
    [(_, tool, at)] = [b for b in code if b[0] == "python"]
    filename = re.findall(r"`([\w/]+\.py)`", text[:at])[-1]
    shells = [body for lang, body, _ in code if lang == "sh"]
    register = next(s for s in shells if "TENANTRY_CAPABILITY_MODULES" in s)
    start = next(s for s in shells if re.search(r"tenantry dev\s*$", s.strip()))
    ask = next(s for s in shells if "tenantry dev say" in s)
    [expected] = [body for lang, body, _ in code if lang == "text"]
    if not Path(sys.prefix, "bin", "tenantry").exists():
        pytest.fail(f"no tenantry script in {sys.prefix}: install the project (make)")
    (tmp_path / filename).write_text(tool, encoding="utf-8")
    (tmp_path / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    env = newcomer_env(tmp_path)

    first = subprocess.Popen([BASH, "-c", register + start], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_page(tmp_path, first)
        second = subprocess.run([BASH, "-c", ask], cwd=tmp_path, env=env, text=True,
                                capture_output=True, timeout=120)
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = first.communicate(timeout=60)

    assert second.returncode == 0, second.stderr
    assert "no playground is running" not in second.stderr, "it asked the running one"
    assert second.stdout.startswith(expected), second.stdout
    assert first.returncode == 0, err
    assert "orders.open" in out.splitlines()[1], "the dev plan licenses the new tool"
    assert out.rstrip().endswith("playground stopped")
    assert not (tmp_path / ".tenantry" / "playground.json").exists()
