"""The message that carries a run's answer in Teams: streamed in a 1:1 chat, else one.

In a 1:1 chat the model's text streams in through the SDK's ``StreamingResponse`` as it
is generated (Teams streams nowhere else); the stream ends with what follows the answer
(tools refused, why a run stopped) and a halt's card. Elsewhere, and when nothing was
streamed, the outcome is posted as one message.
"""

from __future__ import annotations

from typing import Any

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import CardFactory, TurnContext
from microsoft_agents.hosting.core.app.streaming import StreamingResponse

from bots.teams import render
from core.agent import RunOutcome


def after_stream(outcome: RunOutcome, reply: render.TeamsReply) -> str:
    """What follows a streamed answer, which is already on screen: the tools refused, or
    why the run stopped (a halt card says its own words)."""
    if outcome.status == "completed":
        return "\n\n".join(render.tool_refused(capability, reason)
                           for capability, reason in outcome.refused_tools)
    return "" if reply.card is not None else reply.text


def message(text: str, card: dict[str, Any] | None) -> Activity:
    """A message of ``text``, or of an Adaptive Card alone (a card says all its text says)."""
    if card is not None:
        return Activity(type="message", attachments=[CardFactory.adaptive_card(card)])
    return Activity(type="message", text=text)


class Streamed:
    """The answer of one run: streamed into a 1:1 chat, or kept for one message."""

    def __init__(self, stream: StreamingResponse | None) -> None:
        self.stream = stream
        self._response = 0
        self._any = False

    async def text(self, response: int, piece: str) -> None:
        """A piece of the model's text: a new response starts on a new paragraph."""
        if self.stream is None or not piece:
            return
        if self._any and response != self._response:
            self.stream.queue_text_chunk("\n\n")
        self._response, self._any = response, True
        self.stream.queue_text_chunk(render.escape(piece))

    async def finish(self, context: TurnContext, text: str, card: dict[str, Any] | None = None,
                     *, after: str | None = None) -> None:
        """End with one message of ``text`` and ``card``; or, if text was streamed, end
        the stream with ``after`` (default ``text``) below what it showed, and ``card``."""
        if self.stream is None or not self._any:
            await context.send_activity(message(text, card))
            return
        tail = text if after is None else after
        if tail:
            self.stream.queue_text_chunk("\n\n" + tail)
        if card is not None:
            self.stream.set_attachments([CardFactory.adaptive_card(card)])
        await self.stream.end_stream()
