"""What the Bot Connector stand-in keeps per conversation, and Teams' rules for changing it.

Streaming follows Teams' REST protocol (learn.microsoft.com, "Stream bot messages"): a
``typing`` activity with a ``streaminfo`` entity (``streamType`` ``informative`` or
``streaming``, ``streamSequence`` from 1) starts a stream and gets ``201 {"id": streamId}``;
later updates name the ``streamId`` with a higher sequence and get ``202 {}`` (a stale
sequence is dropped: ``202`` with ``ContentStreamSequenceOrderPreConditionFailed``); a
``message`` with ``streamType`` ``final`` and no sequence ends it as one message whose id
is the stream's, and the stream takes no more (403 ``ContentStreamNotAllowed``).

Teams streams only in personal chats; elsewhere any streaminfo is refused with
``400 {"error": {"code": "BadArgument", "message": "Streaming API is not enabled for this
conversation"}}``, which the SDK's ``StreamingResponse`` takes as its cue to send one
plain message instead. A conversation's type is what ``conversation`` declared, or else
what its id's form says (``activities.conversation_type_of``).

Stricter than Teams in one way: a message with neither text nor attachments is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final, Literal

from standins.teams.activities import (
    ADAPTIVE_CARD,
    ConversationType,
    JsonDict,
    conversation_type_of,
    message_id,
)

NOT_STREAMABLE: Final = "Streaming API is not enabled for this conversation"
STALE_SEQUENCE: Final = "ContentStreamSequenceOrderPreConditionFailed"


class ConnectorError(Exception):
    """The Bot Connector answers ``status`` with ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message

    def body(self) -> JsonDict:
        """The error body as the service sends it."""
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True, slots=True)
class Answer:
    """What the connector answers to one call, and what the call made or touched.

    ``error`` is set for a call answered with success but not acted on (a stale
    stream update); refusals raise ``ConnectorError`` instead.
    """

    status: int
    body: JsonDict | None
    activity_id: str | None = None
    conversation_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TeamsMessage:
    """A message as a person sees it now: updates applied, a finished stream as one message."""

    id: str
    conversation_id: str
    text: str
    attachments: tuple[JsonDict, ...]
    app_id: str | None
    reply_to_id: str | None
    streamed: bool
    edited: bool
    activity: JsonDict

    @property
    def cards(self) -> tuple[JsonDict, ...]:
        """The contents of the message's Adaptive Card attachments."""
        return tuple(a.get("content") or {} for a in self.attachments
                     if a.get("contentType") == ADAPTIVE_CARD)


@dataclass(slots=True)
class _Stored:
    id: str
    conversation_id: str
    activity: JsonDict
    app_id: str | None
    reply_to_id: str | None
    stream: Literal["open", "ended"] | None = None
    sequence: int = 0
    edited: bool = False
    deleted: bool = False

    def visible(self) -> TeamsMessage:
        return TeamsMessage(
            id=self.id, conversation_id=self.conversation_id,
            text=str(self.activity.get("text") or ""),
            attachments=tuple(self.activity.get("attachments") or ()), app_id=self.app_id,
            reply_to_id=self.reply_to_id, streamed=self.stream is not None, edited=self.edited,
            activity=self.activity,
        )


def _bad(message: str) -> ConnectorError:
    return ConnectorError(400, "BadRequest", message)


def _not_found() -> ConnectorError:
    return ConnectorError(404, "NotFound", "The activity was not found")


def _require_content(activity: JsonDict) -> None:
    if activity.get("type") == "message" and not (
        activity.get("text") or activity.get("attachments")
    ):
        raise ConnectorError(400, "BadArgument", "A message needs text or attachments")


def _stream_info(activity: JsonDict) -> JsonDict | None:
    for entity in activity.get("entities") or ():
        if isinstance(entity, dict) and str(entity.get("type", "")).lower() == "streaminfo":
            return entity
    return None


class Conversations:
    """Messages, streams and typing per conversation id, changed as Teams changes them."""

    def __init__(self) -> None:
        self._kinds: dict[str, ConversationType] = {}
        self._stored: dict[str, dict[str, _Stored]] = {}
        self._typing: Counter[str] = Counter()

    def conversation(self, conversation_id: str, kind: ConversationType) -> None:
        """Declare a conversation's type, over what its id's form says."""
        self._kinds[conversation_id] = kind

    def kind_of(self, conversation_id: str) -> ConversationType:
        """The conversation's type: as declared, else as its id's form implies."""
        return self._kinds.get(conversation_id) or conversation_type_of(conversation_id)

    def messages(self, conversation_id: str) -> list[TeamsMessage]:
        """What a person sees in the conversation, oldest first: no deleted messages, no
        stream still running."""
        return [s.visible() for s in self._stored.get(conversation_id, {}).values()
                if not s.deleted and s.stream != "open"]

    def typing_count(self, conversation_id: str) -> int:
        """How many plain typing indicators the bot showed in the conversation."""
        return self._typing[conversation_id]

    def post(self, conversation_id: str, reply_to_id: str | None, activity: JsonDict,
             app_id: str | None) -> Answer:
        """Send (or, with ``reply_to_id``, reply with) an activity."""
        info = _stream_info(activity)
        if info is not None:
            if self.kind_of(conversation_id) != "personal":
                raise ConnectorError(400, "BadArgument", NOT_STREAMABLE)
            return self._stream(conversation_id, reply_to_id, activity, app_id, info)
        if activity.get("type") == "typing":
            self._typing[conversation_id] += 1
            return Answer(200, {})
        _require_content(activity)
        stored = self._store(conversation_id, reply_to_id, activity, app_id)
        return Answer(201, {"id": stored.id}, stored.id)

    def update(self, conversation_id: str, activity_id: str, activity: JsonDict) -> Answer:
        """Replace a message's content, as the person sees it."""
        found = self._find(conversation_id, activity_id)
        if found is None or found.stream == "open":
            raise _not_found()
        _require_content(activity)
        found.activity, found.edited = activity, True
        return Answer(200, {"id": found.id}, found.id)

    def delete(self, conversation_id: str, activity_id: str) -> Answer:
        """Take a message out of the conversation."""
        found = self._find(conversation_id, activity_id)
        if found is None:
            raise _not_found()
        found.deleted = True
        return Answer(200, None, found.id)

    def create_chat(self, params: JsonDict, app_id: str | None) -> Answer:
        """Open (or find again) the bot's 1:1 chat with one person, and post its activity."""
        members = params.get("members") or []
        if params.get("isGroup") or len(members) != 1 or not isinstance(members[0], dict):
            raise ConnectorError(400, "BadArgument", "Incorrect conversation creation parameters")
        channel_data = params.get("channelData") or {}
        tenant = params.get("tenantId") or (channel_data.get("tenant") or {}).get("id")
        if not tenant:
            raise ConnectorError(400, "BadArgument", "A tenant id is required")
        seed = json.dumps([app_id, tenant, members[0].get("id")]).encode()
        conversation_id = "a:1" + hashlib.sha256(seed).hexdigest()[:40]
        self.conversation(conversation_id, "personal")
        body: JsonDict = {"id": conversation_id}
        activity = params.get("activity")
        if not isinstance(activity, dict):
            return Answer(201, body, conversation_id=conversation_id)
        _require_content(activity)
        body["activityId"] = self._store(conversation_id, None, activity, app_id).id
        return Answer(201, body, body["activityId"], conversation_id)

    def _stream(self, conversation_id: str, reply_to_id: str | None, activity: JsonDict,
                app_id: str | None, info: JsonDict) -> Answer:
        stream_type = info.get("streamType", "streaming")
        stream_id, sequence = info.get("streamId"), info.get("streamSequence")
        if activity.get("type") == "message":
            if stream_type != "final" or sequence is not None:
                raise _bad("the final message has streamType final and no streamSequence")
            stream = self._open_stream(conversation_id, stream_id)
            stream.activity, stream.stream = activity, "ended"
            return Answer(202, {}, stream.id)
        if activity.get("type") != "typing" or stream_type not in ("informative", "streaming"):
            raise _bad(f"a {activity.get('type')} activity cannot carry streamType {stream_type}")
        if not activity.get("text"):
            raise _bad("Start streaming activities should include text")
        if not isinstance(sequence, int) or sequence < 1:
            raise _bad("streamSequence must be a positive integer")
        if not stream_id:
            if sequence != 1:
                raise _bad("the first streamSequence must be 1")
            text = activity["text"] if stream_type == "streaming" else ""
            stream = self._store(conversation_id, reply_to_id, {**activity, "text": text},
                                 app_id, stream="open", sequence=1)
            return Answer(201, {"id": stream.id}, stream.id)
        stream = self._open_stream(conversation_id, stream_id)
        if sequence <= stream.sequence:
            body = {"error": {"code": STALE_SEQUENCE, "message": "PreCondition failed "
                              "exception when processing streaming activity."}}
            return Answer(202, body, stream.id, error=STALE_SEQUENCE)
        stream.sequence = sequence
        if stream_type == "streaming":
            stream.activity = activity
        return Answer(202, {}, stream.id)

    def _open_stream(self, conversation_id: str, stream_id: object) -> _Stored:
        stream = self._find(conversation_id, str(stream_id) if stream_id else "")
        if stream is None or stream.stream is None:
            raise _bad(f"no stream {stream_id!r} in this conversation")
        if stream.stream == "ended":
            raise ConnectorError(403, "ContentStreamNotAllowed", "Content stream is not "
                                 "allowed on an already completed streamed message")
        return stream

    def _store(self, conversation_id: str, reply_to_id: str | None, activity: JsonDict,
               app_id: str | None, **state: Any) -> _Stored:
        stored = _Stored(id=message_id(), conversation_id=conversation_id, activity=activity,
                         app_id=app_id, reply_to_id=reply_to_id, **state)
        self._stored.setdefault(conversation_id, {})[stored.id] = stored
        return stored

    def _find(self, conversation_id: str, activity_id: str) -> _Stored | None:
        found = self._stored.get(conversation_id, {}).get(activity_id)
        return None if found is None or found.deleted else found
