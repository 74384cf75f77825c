from __future__ import annotations

import re
from pathlib import Path

from bots.demo import clip, run_demo

RUN_ID = re.compile(r"run ([0-9a-f-]+):")


async def test_the_demo_passes_every_isolation_check(tmp_path: Path) -> None:
    transcript = await run_demo(f"sqlite:///{tmp_path / 'demo.db'}")
    assert transcript.checks, "the demo made no checks"
    failed = [name for name, ok in transcript.checks if not ok]
    assert failed == []
    assert set(transcript.lines) == {"acme", "globex"}
    assert any("[sandbox model" in line for line in transcript.lines["acme"])
    lines = transcript.lines["acme"] + transcript.lines["globex"]
    run_ids = [m[1] for line in lines for m in RUN_ID.finditer(line)]
    assert run_ids and all(len(run_id) == 36 for run_id in run_ids), "run ids shown whole"
    assert len(set(run_ids)) == 5, "five runs, five ids (one resumed)"
    assert not any("__" in line for line in lines), "tools named by their capability"
    assert any(line.endswith("; refused audit.recent (not_licensed)") for line in lines)


async def test_the_demo_through_slack_passes_every_check(tmp_path: Path) -> None:
    from bots.demo_slack import run_slack_demo

    transcript = await run_slack_demo(tmp_path)
    assert len(transcript.checks) >= 8
    assert [name for name, ok in transcript.checks if not ok] == []
    assert any("30 days" in line for line in transcript.lines["acme"])
    globex = transcript.lines["globex"]
    asked = globex.index("bob in his DM with the app: Please list audit.recent events")
    assert globex[asked + 1].startswith("  | [sandbox model"), "the answer under its question"
    assert not any("__" in line for line in globex), "tools named by their capability"
    assert any(line.endswith("…") for line in globex), "cut lines say so"


def test_a_cut_line_ends_in_an_ellipsis_and_keeps_its_width() -> None:
    assert clip("short", 10) == "short"
    assert clip("x" * 20, 10) == "x" * 9 + "…"
    assert len(clip("x" * 20, 10)) == 10


async def test_the_demo_through_teams_passes_every_check(tmp_path: Path) -> None:
    from bots.demo_teams import run_teams_demo

    transcript = await run_teams_demo(tmp_path)
    assert len(transcript.checks) >= 15
    assert [name for name, ok in transcript.checks if not ok] == []
    assert any("(streamed)" in line for line in transcript.lines["acme"])
    assert any("[Resume]" in line for line in transcript.lines["globex"])
    acme = transcript.lines["acme"]
    assert {"API: 1 run", "MCP: 1 run"} <= {line.split(",")[0] for line in acme}
    answered = [m[1] for line in acme if line.startswith("  -> ")
                for m in RUN_ID.finditer(line)]
    assert len(answered) == 2 and all(len(run_id) == 36 for run_id in answered), (
        "the API's and the MCP client's runs, their ids whole")


def test_a_card_is_printed_as_its_text_facts_and_buttons() -> None:
    from bots.demo_teams import card_lines
    from bots.teams import render

    card = render.halt_card("run-1", {"ceiling": "tool_calls", "limit": 1, "used": 1})

    lines = card_lines(card)
    assert lines[0] == render.PAUSED_TITLE
    assert {"Limit: 1", "Used: 1"} <= set(lines)
    assert lines[-1] == f"[Resume] (Action.Execute, verb {render.RESUME_VERB})"
    assert not any("{" in line for line in lines)
