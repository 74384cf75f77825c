"""Tests of ``bots.wording``: the figures and reasons every transport says alike."""

from __future__ import annotations

import pytest

from bots import wording


@pytest.mark.parametrize(("ceiling", "value", "expected"), [
    ("tokens", 1200, "1,200"),
    ("monthly_tool_calls", 3, "3"),
    ("walltime_ms", 1500, "1.5 s"),
    ("cost_microcents", 10**8, "$1.0000"),
    ("monthly_cost_microcents", 10**8, "$1.0000"),
    ("tokens", None, "0"),
    ("tokens", "12", "0"),
])
def test_an_amount_reads_by_its_ceiling(ceiling: str, value: object, expected: str) -> None:
    assert wording.amount(ceiling, value) == expected


def test_a_per_run_ceiling_is_resumable_and_a_monthly_one_is_not() -> None:
    per_run = wording.reached("tokens", 1000, 1200)
    monthly = wording.reached("monthly_cost_microcents", 10**8, 10**8)

    assert per_run.described == "the per-request token limit (limit 1,000, used 1,200)"
    assert per_run.resumable and not monthly.resumable
    assert monthly.described == "the monthly cost allowance (limit $1.0000, used $1.0000)"
    assert wording.reached("new_ceiling", 1, 2).what == "new_ceiling"


@pytest.mark.parametrize(("used", "allowance", "expected"), [
    (0, 100, ("░░░░░░░░░░", "0%")),
    (42, 100, ("▓▓▓▓░░░░░░", "42%")),
    (1, 1000, ("░░░░░░░░░░", "<1%")),
    (130, 100, ("▓▓▓▓▓▓▓▓▓▓", "130%")),
    (5, 0, ("░░░░░░░░░░", "no allowance")),
])
def test_the_gauge(used: int, allowance: int, expected: tuple[str, str]) -> None:
    assert wording.gauge(used, allowance) == expected


def test_shares_count_their_nouns_and_excerpts_fold_and_clip() -> None:
    assert wording.share_figures(1, 1234, 10**6, 2) == (
        "1 request · 1,234 tokens · $0.0100 · 2 tool calls")
    assert wording.excerpt("one\n two   three", 9) == "one two …"
    assert wording.clip("short", 9) == "short"


def test_every_incident_event_and_outcome_has_a_label() -> None:
    assert set(wording.OUTCOMES) == {"completed", "refused", "halted", "failed"}
    assert set(wording.INCIDENTS) == {"tool.refused", "run.refused", "run.halted"}
    assert all(reason in wording.INCIDENT_REASONS for reason in wording.TOOL_REASONS)
