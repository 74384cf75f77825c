"""Adaptive Cards as Teams shows them: the elements Tenantry uses, and the size limit.

No words live here (they are ``render``'s); this module only says how a card is
built. Two kinds of text go into a card, and they must not be confused:

- ``text``: a ``TextBlock``, whose text Teams reads as Markdown and in which it
  fills in ``{{DATE(...)}}`` and ``{{TIME(...)}}``. Only Tenantry's own words and
  figures go there.
- ``literal``: a ``RichTextBlock`` of ``TextRun`` s, which Teams shows exactly as
  written (no Markdown, no HTML). Everything a person or a model wrote, and names
  and ids that come from outside, go there. No card carries ``msteams.entities``, so
  an ``<at>`` tag in such text can never become a mention.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

Element = dict[str, Any]

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
"""The newest version Teams renders everywhere (desktop, web and mobile)."""
MAX_CARD_BYTES = 26_000
"""Teams refuses a message over about 28 KB; the activity around the card needs the rest."""


def card(body: Sequence[Element], actions: Sequence[Element] = (), *,
         full_width: bool = False) -> Element:
    """An Adaptive Card with ``body`` and, if any, ``actions`` below it."""
    made: Element = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION,
                     "body": list(body)}
    if actions:
        made["actions"] = list(actions)
    if full_width:
        made["msteams"] = {"width": "Full"}
    return made


def text(words: str, **style: Any) -> Element:
    """A ``TextBlock`` of Tenantry's own words: Teams reads its Markdown and date functions."""
    return {"type": "TextBlock", "text": words, "wrap": True, **style}


def run(words: str, **style: Any) -> Element:
    """A ``TextRun``: shown as written, whatever it holds."""
    return {"type": "TextRun", "text": words, **style}


def literal(*runs: Element | str, **style: Any) -> Element:
    """A ``RichTextBlock`` of runs (a plain string is a run without style)."""
    return {"type": "RichTextBlock",
            "inlines": [run(part) if isinstance(part, str) else part for part in runs],
            **style}


def facts(pairs: Sequence[tuple[str, str]]) -> Element:
    """A ``FactSet``: a title and a value a line, both Tenantry's own words."""
    return {"type": "FactSet", "facts": [{"title": title, "value": value}
                                         for title, value in pairs]}


def group(*items: Element, **style: Any) -> Element:
    """A ``Container``, so that the lines of one entry are kept or cut together."""
    return {"type": "Container", "items": list(items), **style}


def execute(title: str, verb: str, data: dict[str, Any] | None = None,
            **style: Any) -> Element:
    """An ``Action.Execute``: Teams sends ``verb`` and ``data`` back to the bot as an invoke."""
    action: Element = {"type": "Action.Execute", "title": title, "verb": verb, **style}
    if data is not None:
        action["data"] = data
    return action


def when(moment: datetime) -> str:
    """A time each viewer's Teams shows in their own zone and language."""
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def size(element: Element) -> int:
    """Bytes of JSON, counted as the most a serialiser may spend: ASCII escapes, spaced."""
    return len(json.dumps(element))


def fit(body: Sequence[Element], tail: Sequence[Element], actions: Sequence[Element],
        cut: Element, *, full_width: bool = False) -> Element:
    """A card within ``MAX_CARD_BYTES``, cutting the body so that the tail stays whole.

    The tail is what the person just asked for (a verification result) and the
    actions are how they ask again, so they are the last to lose; ``cut`` marks the
    place where the body stops, so a cut is never silent.
    """
    whole = card([*body, *tail], actions, full_width=full_width)
    if size(whole) <= MAX_CARD_BYTES:
        return whole
    room = MAX_CARD_BYTES - size(card([cut, *tail], actions, full_width=full_width))
    kept: list[Element] = []
    for element in body:
        room -= size(element) + len(", ")
        if room < 0:
            break
        kept.append(element)
    return card([*kept, cut, *tail], actions, full_width=full_width)
