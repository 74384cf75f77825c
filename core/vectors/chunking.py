"""Cutting documents into chunks for embedding, along paragraph and sentence lines.

A chunk is at most ``max_chars`` long. Paragraphs are kept whole when they fit;
longer ones are cut between sentences, and only a sentence longer than a chunk is
cut between words (a word longer than a chunk, between characters). Consecutive
chunks share up to ``overlap`` characters of whole sentences, so a passage cut at a
chunk boundary is still found whole in one of the two.
"""

from __future__ import annotations

import re
from typing import Final

from core.errors import InvalidInput

DEFAULT_MAX_CHARS: Final = 1200
DEFAULT_OVERLAP: Final = 200
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(
    r"(?<=[.!?\u2026])\s+"  # . ! ? and the ellipsis, then whitespace
    r"|(?<=[.!?\u2026][\"')\]\u201d\u2019])\s+"  # the same, closed by a quote or bracket
    r"|(?<=[\u3002\uff01\uff1f])\s*"  # CJK full stops, which need no whitespace after
)
_SPACE = re.compile(r"\s+")


def _split_long(text: str, max_chars: int) -> list[str]:
    """Cut a sentence longer than ``max_chars`` between words, or inside a word if it must."""
    words: list[str] = []
    for word in text.split(" "):
        words.extend(word[start : start + max_chars] for start in range(0, len(word), max_chars))
    parts: list[str] = []
    for word in words:
        if parts and len(parts[-1]) + 1 + len(word) <= max_chars:
            parts[-1] += " " + word
        else:
            parts.append(word)
    return parts


def _pieces(text: str, max_chars: int) -> list[str]:
    """The text's paragraphs, or their sentences, or their parts, as pieces of a chunk.

    Each piece starts with what joins it to the piece before: a blank line where a
    paragraph starts, a space elsewhere.
    """
    pieces: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text.strip()):
        flat = _SPACE.sub(" ", paragraph).strip()
        if not flat:
            continue
        units = [flat] if len(flat) <= max_chars else _SENTENCE_END.split(flat)
        separator = "\n\n"
        for unit in units:
            for part in _split_long(unit.strip(), max_chars):
                pieces.append(separator + part)
                separator = " "
    return pieces


def _join(pieces: list[str]) -> str:
    """The pieces as one text, without the separator before the first."""
    return "".join(pieces).lstrip()


def chunk_text(
    text: str, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP
) -> list[str]:
    """Cut ``text`` into chunks of at most ``max_chars`` characters, in reading order.

    Args:
        text: The document. Runs of whitespace inside a paragraph become one space;
            a blank line separates paragraphs.
        max_chars: The longest chunk.
        overlap: At most this many characters (whole sentences) of the end of a chunk
            are repeated at the start of the next; 0 for none.

    Returns:
        The chunks, none empty; ``[]`` for a blank text.
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise InvalidInput(f"max_chars must be a positive integer, got {max_chars!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < max_chars:
        raise InvalidInput(f"overlap must be from 0 to max_chars - 1, got {overlap!r}")
    chunks: list[str] = []
    current: list[str] = []
    for piece in _pieces(text, max_chars):
        if current and len(_join([*current, piece])) > max_chars:
            chunks.append(_join(current))
            current = _tail(current, overlap)
            while current and len(_join([*current, piece])) > max_chars:
                current.pop(0)
        current.append(piece)
    if current:
        chunks.append(_join(current))
    return chunks


def _tail(pieces: list[str], overlap: int) -> list[str]:
    """The last pieces of a closed chunk that fit in ``overlap`` characters."""
    tail: list[str] = []
    for piece in reversed(pieces):
        if len(_join([piece, *tail])) > overlap:
            break
        tail.insert(0, piece)
    if len(tail) == len(pieces):
        tail.pop(0)
    return tail
