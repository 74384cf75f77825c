"""Tests for core.vectors.chunking: paragraph- and sentence-aware chunks with overlap."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.vectors.chunking import chunk_text


def test_a_short_text_is_one_chunk_with_its_whitespace_tidied() -> None:
    assert chunk_text("  Hello   world.\n  Bye.  ") == ["Hello world. Bye."]
    assert chunk_text("") == []
    assert chunk_text(" \n\n \t") == []


def test_paragraphs_that_fit_stay_whole_and_keep_their_break() -> None:
    text = "First para, one sentence.\n\nSecond para. Two sentences.\n \n\nThird."
    assert chunk_text(text, max_chars=60, overlap=0) == [
        "First para, one sentence.\n\nSecond para. Two sentences.", "Third."]


def test_a_long_paragraph_is_cut_between_sentences() -> None:
    sentences = [f"Sentence number {i} ends here." for i in range(12)]
    chunks = chunk_text(" ".join(sentences), max_chars=100, overlap=0)
    assert len(chunks) > 1
    assert all(len(c) <= 100 and c.endswith("ends here.") for c in chunks)
    assert " ".join(chunks) == " ".join(sentences)


def test_neighbouring_chunks_overlap_by_whole_sentences() -> None:
    sentences = [f"Fact {i} is true." for i in range(20)]
    chunks = chunk_text(" ".join(sentences), max_chars=80, overlap=35)
    for before, after in pairwise(chunks):
        shared = next(s for s in sentences if after.startswith(s))
        assert shared in before
        assert len(after.split(shared)[0]) == 0
    assert all(len(c) <= 80 for c in chunks)


def test_quotes_after_a_full_stop_stay_with_their_sentence() -> None:
    text = 'She said "we ship friday." Then she left. ' * 6
    assert all(c.count('"') % 2 == 0 for c in chunk_text(text, max_chars=60, overlap=0))


def test_words_and_runs_longer_than_a_chunk_are_cut_as_a_last_resort() -> None:
    chunks = chunk_text("short " + "x" * 25 + " tail", max_chars=10, overlap=0)
    assert chunks == ["short", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx tail"]


def test_cjk_sentences_are_cut_at_their_full_stops() -> None:
    chunks = chunk_text("\u4eca\u65e5\u306f\u6674\u308c\u3002" * 10, max_chars=14, overlap=0)
    assert all(c.endswith("\u3002") and len(c) <= 14 for c in chunks)


@pytest.mark.parametrize(("max_chars", "overlap"), [(0, 0), (10, 10), (10, -1), (10, 11)])
def test_bad_sizes_are_refused(max_chars: int, overlap: int) -> None:
    with pytest.raises(InvalidInput):
        chunk_text("text", max_chars=max_chars, overlap=overlap)


_document = st.lists(
    st.lists(st.lists(st.integers(1, 12), min_size=1, max_size=12), min_size=1, max_size=8),
    min_size=1, max_size=6,
)


def _render(document: list[list[list[int]]]) -> str:
    """Paragraphs of sentences of words, every word unique (so it has one position)."""
    numbers = iter(range(10**6))
    return "\n\n".join(
        " ".join(" ".join(f"{'w' * n}{next(numbers)}" for n in sentence) + "."
                 for sentence in paragraph)
        for paragraph in document
    )


@given(_document, st.integers(20, 200), st.floats(0, 0.9))
def test_chunks_are_bounded_and_cover_the_text_in_order(
    document: list[list[list[int]]], max_chars: int, overlap_share: float
) -> None:
    text = _render(document)
    words = text.split()
    chunks = chunk_text(text, max_chars=max_chars, overlap=int(max_chars * overlap_share))
    covered: set[int] = set()
    last_start = -1
    for chunk in chunks:
        assert 0 < len(chunk) <= max_chars
        chunk_words = chunk.split()
        start = words.index(chunk_words[0])
        assert words[start : start + len(chunk_words)] == chunk_words
        assert start > last_start
        last_start = start
        covered.update(range(start, start + len(chunk_words)))
    assert covered == set(range(len(words)))
