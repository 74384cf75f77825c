from __future__ import annotations

from pathlib import Path

from bots.demo import run_demo


async def test_the_demo_passes_every_isolation_check(tmp_path: Path) -> None:
    transcript = await run_demo(f"sqlite:///{tmp_path / 'demo.db'}")
    assert transcript.checks, "the demo made no checks"
    failed = [name for name, ok in transcript.checks if not ok]
    assert failed == []
    assert set(transcript.lines) == {"acme", "globex"}
    assert any("[sandbox model" in line for line in transcript.lines["acme"])


async def test_the_demo_through_slack_passes_every_check(tmp_path: Path) -> None:
    from bots.demo_slack import run_slack_demo

    transcript = await run_slack_demo(tmp_path)
    assert len(transcript.checks) >= 8
    assert [name for name, ok in transcript.checks if not ok] == []
    assert any("30 days" in line for line in transcript.lines["acme"])


async def test_the_demo_through_teams_passes_every_check(tmp_path: Path) -> None:
    from bots.demo_teams import run_teams_demo

    transcript = await run_teams_demo(tmp_path)
    assert len(transcript.checks) >= 15
    assert [name for name, ok in transcript.checks if not ok] == []
    assert any("(streamed)" in line for line in transcript.lines["acme"])
    assert any("[Resume]" in line for line in transcript.lines["globex"])


def test_a_card_is_printed_as_its_text_facts_and_buttons() -> None:
    from bots.demo_teams import card_lines
    from bots.teams import render

    card = render.halt_card("run-1", {"ceiling": "tool_calls", "limit": 1, "used": 1})

    lines = card_lines(card)
    assert lines[0] == render.PAUSED_TITLE
    assert {"Limit: 1", "Used: 1"} <= set(lines)
    assert lines[-1] == f"[Resume] (Action.Execute, verb {render.RESUME_VERB})"
    assert not any("{" in line for line in lines)
