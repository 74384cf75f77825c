"""What a Block Kit view or an Adaptive Card shows, read the way a person would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def texts(value: Any) -> Iterator[str]:
    """Every text a view or a card shows, wherever its blocks or elements nest it."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)
