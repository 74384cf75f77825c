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
