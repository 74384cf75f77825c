"""The one Slack message that carries a run's answer, from "working on it" to the end.

In a thread the answer is streamed through slack_sdk's chat streaming helper
(``AsyncWebClient.chat_stream``: ``chat.startStream``, ``appendStream``, ``stopStream``)
as the model generates it, under a status line that names the tool in use. What a
response said before calling a tool stays, and the next response's text follows it;
the message ends with the final answer, or with the halt that stopped it. A stream
Slack refuses to start is replaced by a posted placeholder; one it has ended on its
side (``message_not_in_streaming_state``) or that fails is finished with
``chat.update`` on the same message, so the answer always ends complete in one message.
A message whose stream was opened by a process that stopped (a request parked at
shutdown) has that stream stopped when its run is answered after the restart.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import MarkdownTextChunk, TaskUpdateChunk
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import render
from core.logs import log

STREAM_PIECE_CHARS = 400
"""Characters per ``chat.appendStream`` of a finished text: small enough to show progress,
large enough to stay well inside Slack's rate limit for the method."""

FLUSH_CHARS = 120
"""Streamed text is sent once this much has gathered, or at a line break: about a
second of a model's output, so appends stay well inside the rate limit."""


def _pieces(text: str, size: int = STREAM_PIECE_CHARS) -> list[str]:
    """``text`` cut into pieces of at most ``size``, at a line or word break if there is one."""
    pieces: list[str] = []
    while len(text) > size:
        cut = max(text.rfind("\n", 0, size), text.rfind(" ", 0, size)) + 1 or size
        pieces.append(text[:cut])
        text = text[cut:]
    return [*pieces, text] if text else pieces


def _status(title: str, status: str) -> TaskUpdateChunk:
    return TaskUpdateChunk(id="run", title=title, status=status)


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error"))


class AnswerMessage:
    """The message of one run's answer: streamed where Slack allows, else edited.

    Attributes:
        ts: The message's ts, stored with the run so that a resumed run edits it.
    """

    def __init__(self, client: AsyncWebClient, channel: str, ts: str,
                 stream: AsyncChatStream | None = None) -> None:
        self.client = client
        self.channel = channel
        self.ts = ts
        self._stream = stream
        self._said = ""
        """Everything streamed so far, sent or waiting in ``_pending``."""
        self._pending = ""
        self._response = (0, "")
        """The number of the response being streamed, and its text so far."""

    @classmethod
    async def open(cls, client: AsyncWebClient, channel: str, thread_ts: str | None,
                   recipient_team: str, recipient_user: str) -> AnswerMessage:
        """Start the answer: a stream with a status line in a thread, else a placeholder.

        Streams need a thread; a top-level DM is answered with a posted placeholder.
        """
        if thread_ts is not None:
            stream = await client.chat_stream(channel=channel, thread_ts=thread_ts,
                                              recipient_team_id=recipient_team,
                                              recipient_user_id=recipient_user)
            try:
                await stream.append(chunks=[_status(render.STATUS_WORKING, "in_progress")])
                return cls(client, channel, str(stream.ts), stream)
            except SlackApiError as exc:
                log.info("slack stream not started; posting instead", error=_error(exc))
        posted = await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                               text=render.ANSWER_PENDING)
        return cls(client, channel, str(posted["ts"]))

    async def progress(self, capability: str) -> None:
        """Name the tool the run is using in the stream's status line.

        Only a streamed answer has a status line; a stream Slack refuses to extend is
        left to ``finish``, which falls back to an edit.
        """
        if self._stream is None:
            return
        try:
            await self._stream.append(
                chunks=[_status(render.status_using(capability), "in_progress")])
        except SlackApiError as exc:
            log.info("slack status line not updated", error=_error(exc))

    async def text(self, response: int, text: str) -> None:
        """Stream the model's text as it comes (``core.agent.TextStreamed``)."""
        if self._stream is None:
            return
        number, so_far = self._response
        if response != number:
            if self._said:
                text = "\n\n" + text.lstrip()
            self._response = (response, "")
            so_far = ""
        self._response = (response, so_far + text)
        self._said += text
        self._pending += text
        if len(self._pending) >= FLUSH_CHARS or "\n" in text:
            await self._flush(final=False)

    async def _flush(self, *, final: bool = True) -> None:
        """Send what gathered, its broadcast mentions disarmed; a trailing ``<`` waits for
        the next piece unless ``final``, so a split ``<!channel>`` is disarmed too."""
        keep = "" if final or not self._pending.endswith("<") else "<"
        pending, self._pending = self._pending[:len(self._pending) - len(keep)], keep
        pending = render.quiet(pending)
        if pending and self._stream is not None:
            try:
                await self._stream.append(chunks=[MarkdownTextChunk(text=pending)])
            except SlackApiError as exc:
                log.info("slack stream not extended; the answer ends in an edit",
                         error=_error(exc))
                self._stream = None

    def _rest(self, shown: render.Rendered) -> str:
        """What the message still lacks: the final text after the streamed answer, or,
        if the stream was cut short (a halt mid-answer), all of it after what was said."""
        answer = render.quiet(self._response[1].lstrip())
        if answer and shown.text.startswith(answer):
            return shown.text[len(answer):]
        return f"\n\n{shown.text}" if self._said else shown.text

    async def finish(self, shown: render.Rendered) -> None:
        """Write the final state; a stream that cannot take it is finished by an edit."""
        await self._flush()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                for piece in _pieces(self._rest(shown)):
                    await stream.append(chunks=[MarkdownTextChunk(text=piece)])
                await stream.stop(chunks=[_status(shown.title, shown.status)],
                                  blocks=shown.footer or None)
                return
            except SlackApiError as exc:
                log.info("slack stream ended early; editing the message instead",
                         error=_error(exc))
        if not self._said:
            await self._stop_orphaned_stream()
        text = shown.text if not self._said else render.quiet(self._said) + self._rest(shown)
        await self.client.chat_update(channel=self.channel, ts=self.ts, text=text,
                                      blocks=render.Rendered(text, shown.footer).blocks())

    async def _stop_orphaned_stream(self) -> None:
        """A stream opened by a process that stopped is still open: stop it first."""
        try:
            await self.client.chat_stopStream(channel=self.channel, ts=self.ts)
        except SlackApiError as exc:
            if _error(exc) != "message_not_in_streaming_state":
                log.info("slack stream not stopped", error=_error(exc))
