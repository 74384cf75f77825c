"""The one Slack message that carries a run's answer, from "working on it" to the end.

In a thread the answer is streamed through slack_sdk's chat streaming helper
(``AsyncWebClient.chat_stream``: ``chat.startStream``, ``appendStream``, ``stopStream``)
under a status line that names the tool in use. A stream Slack refuses to start is
replaced by a posted placeholder; one it has ended on its side
(``message_not_in_streaming_state``) or that fails is finished with ``chat.update`` on
the same message, so the answer always ends complete in one message.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import MarkdownTextChunk, TaskUpdateChunk
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import render
from core.logs import log

STREAM_PIECE_CHARS = 400
"""Characters per ``chat.appendStream``: small enough to show progress, large enough to
stay well inside Slack's rate limit for the method."""


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

    async def finish(self, shown: render.Rendered) -> None:
        """Write the final state; a stream that cannot take it is finished by an edit.

        The answer arrives whole, so it is streamed in pieces, each sent as it is.
        """
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                for piece in _pieces(shown.text):
                    await stream.append(chunks=[MarkdownTextChunk(text=piece)])
                await stream.stop(chunks=[_status(shown.title, shown.status)],
                                  blocks=shown.footer or None)
                return
            except SlackApiError as exc:
                log.info("slack stream ended early; editing the message instead",
                         error=_error(exc))
        await self.client.chat_update(channel=self.channel, ts=self.ts, text=shown.text,
                                      blocks=shown.blocks())
