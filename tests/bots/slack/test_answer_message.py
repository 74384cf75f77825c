"""Tests of ``bots.slack.answer_message`` that need no Slack: cutting an answer into pieces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bots.slack.answer_message import _pieces


def test_a_short_answer_is_one_piece() -> None:
    assert _pieces("hello", 400) == ["hello"]
    assert _pieces("", 400) == []


def test_pieces_break_at_lines_or_words_when_they_can() -> None:
    assert _pieces("alpha beta gamma", 12) == ["alpha beta ", "gamma"]
    assert _pieces("alpha\nbeta gamma", 12) == ["alpha\nbeta ", "gamma"]
    assert _pieces("abcdefghij", 4) == ["abcd", "efgh", "ij"]


@given(st.text(max_size=2000), st.integers(min_value=1, max_value=500))
def test_pieces_join_back_to_the_answer_and_respect_the_size(text: str, size: int) -> None:
    pieces = _pieces(text, size)
    assert "".join(pieces) == text
    assert all(0 < len(piece) <= size for piece in pieces)
