"""Tests of ``bots.teams.cards``: the Adaptive Card elements and Teams' size limit."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from bots.teams import cards


def test_a_card_is_an_adaptive_card_of_version_1_5_with_actions_only_if_any() -> None:
    plain = cards.card([cards.text("hi")])
    acting = cards.card([cards.text("hi")], [cards.execute("Go", "x.go", {"a": 1})],
                        full_width=True)

    assert plain == {"type": "AdaptiveCard", "$schema": cards.SCHEMA, "version": "1.5",
                     "body": [{"type": "TextBlock", "text": "hi", "wrap": True}]}
    assert acting["actions"] == [{"type": "Action.Execute", "title": "Go", "verb": "x.go",
                                  "data": {"a": 1}}]
    assert acting["msteams"] == {"width": "Full"}
    assert "data" not in cards.execute("Go", "x.go")


def test_a_literal_holds_its_text_in_runs_without_markdown() -> None:
    block = cards.literal(cards.run("<at>Boss</at>", italic=True), " **as is**")

    assert block == {"type": "RichTextBlock", "inlines": [
        {"type": "TextRun", "text": "<at>Boss</at>", "italic": True},
        {"type": "TextRun", "text": " **as is**"}]}


def test_times_are_date_and_time_functions_in_utc() -> None:
    moment = datetime(2025, 6, 1, 9, 30, 5, 123, tzinfo=timezone(timedelta(hours=2)))

    assert cards.when(moment) == ("{{DATE(2025-06-01T07:30:05Z, SHORT)}} "
                                  "{{TIME(2025-06-01T07:30:05Z)}}")


def test_size_counts_the_most_a_serialiser_may_spend() -> None:
    element = {"text": "▓ é"}

    assert cards.size(element) == len(json.dumps(element)) > len('{"text": "▓ é"}')


def test_fit_cuts_the_body_marks_the_cut_and_keeps_the_tail_and_actions() -> None:
    body = [cards.text(f"line {i} " + "x" * 200) for i in range(400)]
    tail = [cards.text("verified")]
    actions = [cards.execute("Verify", "x.verify")]
    cut = cards.text("cut")

    fitted = cards.fit(body, tail, actions, cut)

    assert cards.size(fitted) <= cards.MAX_CARD_BYTES
    assert cards.size(fitted) > cards.MAX_CARD_BYTES - cards.size(body[0]) - 2
    assert fitted["body"][-2:] == [cut, *tail] and fitted["actions"] == actions
    assert fitted["body"][:-2] == body[: len(fitted["body"]) - 2]
    assert cards.fit(body[:3], tail, actions, cut) == cards.card([*body[:3], *tail], actions)
