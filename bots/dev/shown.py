"""Slack messages and views as the playground shows them: text, state and buttons.

Slack's clients draw Block Kit; the playground shows each message's text (or, where a
message has none, the text of its blocks) and the buttons in its blocks, which is
enough to read an answer as it streams and to press Resume or Verify.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from standins.slack.api import SlackMessage

# Slack's special syntax: <!date^...|fallback>, <@U1>, <https://x|label>, <#C1|name>.
_SPECIAL = re.compile(r"<([!@#]?)([^<>|]*)(?:\|([^<>]*))?>")


def plain(text: str) -> str:
    """Slack mrkdwn as a person reads it: links and dates by their labels, entities decoded."""
    def label(match: re.Match[str]) -> str:
        sigil, target, shown = match.groups()
        return shown if shown is not None else ("@" if sigil == "@" else "") + target

    return html.unescape(_SPECIAL.sub(label, text))


@dataclass(frozen=True, slots=True)
class Button:
    """A button of a message or view: what pressing it sends."""

    action_id: str
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class Shown:
    """One message as the person sees it.

    Attributes:
        author: ``you``, ``app``, or ``ack`` (the app's acknowledgement of a slash
            command, shown only to the person who typed it).
        state: ``streaming`` while an answer is still being written, else ``done``.
    """

    ts: str
    thread_ts: str | None
    author: str
    text: str
    state: str = "done"
    buttons: tuple[Button, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The message for the page's JSON API."""
        return asdict(self)


def shown(message: SlackMessage) -> Shown:
    """A message the app posted, as the person sees it."""
    text = plain(message.text or "\n".join(block_texts(message.blocks)))
    return Shown(ts=message.ts, thread_ts=message.thread_ts,
                 author="ack" if message.ephemeral_to else "app", text=text,
                 state="streaming" if message.stream_state == "streaming" else "done",
                 buttons=tuple(buttons_of(message.blocks)))


def _text(value: object) -> str:
    return str(value.get("text", "")) if isinstance(value, dict) else ""


def block_texts(blocks: Iterable[Any]) -> list[str]:
    """The readable text of Block Kit blocks: headers, sections, fields and context lines."""
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") in ("header", "section"):
            lines.append(_text(block.get("text")))
            lines.extend(_text(f) for f in block.get("fields") or [])
        elif block.get("type") == "context":
            lines.append(" ".join(_text(e) for e in block.get("elements") or []))
        elif block.get("type") == "markdown":
            lines.append(str(block.get("text", "")))
    return [plain(line) for line in lines if line]


def buttons_of(blocks: Iterable[Any]) -> list[Button]:
    """The buttons in Block Kit blocks (action blocks and section accessories)."""
    found: list[Button] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        found.extend(Button(str(e.get("action_id", "")), str(e.get("value", "")),
                            _text(e.get("text")))
                     for e in elements if isinstance(e, dict) and e.get("type") == "button")
    return found
