"""A loopback emulator of the Anthropic Messages API for end-to-end tests without network.

The real `anthropic` SDK (and pydantic-ai on top of it) talks to it through `base_url`, so the
production path — request building, retries, SSE parsing, error mapping — runs unmodified while
the replies are scripted. The wire shapes follow https://docs.anthropic.com/en/api/messages.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, Field, StrictInt, ValidationError

from standins.loopback import LoopbackServer

ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_CHARS_PER_TOKEN: Final = 4
_STREAM_CHUNK: Final = 12


def _random_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def estimate_tokens(payload: object) -> int:
    """Estimate tokens as ~4 characters each of JSON, so counts are reproducible across runs."""
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True)
    return max(1, math.ceil(len(text) / _CHARS_PER_TOKEN))


def _estimate_input(body: Mapping[str, Any]) -> int:
    return estimate_tokens({k: body[k] for k in ("system", "messages", "tools") if k in body})


def count_bytes(body: Mapping[str, Any]) -> int:
    """A byte-level tokenizer's worst case: a token per UTF-8 byte of every text the model
    is shown (system, messages, tool definitions), and four per message and content block.
    """

    def texts(value: object) -> int:
        if isinstance(value, str):
            return len(value.encode("utf-8"))
        if isinstance(value, Mapping):
            framing = 4 if "type" in value or "role" in value else 0
            return framing + sum(texts(item) for item in value.values())
        if isinstance(value, list):
            return sum(texts(item) for item in value)
        return len(str(value).encode()) if value is not None else 0

    return sum(texts(body[key]) for key in ("system", "messages", "tools") if key in body)


@dataclass(frozen=True, kw_only=True)
class _Billed:
    """Usage and timing shared by successful turns; `None` token counts are estimated."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class TextTurn(_Billed):
    """A plain assistant reply, ending with `end_turn` (or `max_tokens` if it does not fit)."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """One `tool_use` block; the id defaults to a fresh `toolu_...` like the real API's."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: _random_id("toolu_01"))


@dataclass(frozen=True)
class ToolUseTurn(_Billed):
    """An assistant reply asking for one or more tool calls, optionally preceded by text."""

    calls: Sequence[ToolCall]
    text: str = ""


@dataclass(frozen=True)
class ErrorTurn:
    """An API error in Anthropic's JSON shape, its `error.type` taken from the status.

    `in_stream` makes a streaming request fail the way overloads often do in production: a 200
    whose SSE stream carries an `error` event after `message_start`.
    """

    status: int
    message: str = "Scripted error"
    retry_after: float | None = None
    in_stream: bool = False
    delay: float = 0.0

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> ErrorTurn:
        """A 429 carrying `retry-after`, which the SDK honours before retrying."""
        return cls(429, "This request would exceed your rate limit.", retry_after=retry_after)

    @classmethod
    def overloaded(cls, *, retry_after: float | None = None, in_stream: bool = False) -> ErrorTurn:
        """A 529 `overloaded_error`, the status Anthropic uses when capacity is short."""
        return cls(529, "Overloaded", retry_after=retry_after, in_stream=in_stream)

    @classmethod
    def server_error(cls, *, retry_after: float | None = None) -> ErrorTurn:
        """A 500 `api_error`, an unexpected failure on Anthropic's side."""
        return cls(500, "Internal server error", retry_after=retry_after)


Turn = TextTurn | ToolUseTurn | ErrorTurn


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it (headers lower-cased, body as parsed JSON)."""

    path: str
    headers: Mapping[str, str]
    body: Any

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered in the request, in the order sent."""
        tools = self.body.get("tools", []) if isinstance(self.body, dict) else []
        return [tool["name"] for tool in tools if isinstance(tool, dict) and "name" in tool]


class _Message(BaseModel):
    role: Literal["user", "assistant"]
    content: Any


class _CountTokensParams(BaseModel):
    """What the API requires of a body; it names a refused field the way pydantic does."""

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)


class _MessageCreateParams(_CountTokensParams):
    max_tokens: StrictInt = Field(ge=1)


def _error_body(status: int, message: str, request_id: str) -> dict[str, Any]:
    error = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
    return {"type": "error", "error": error, "request_id": request_id}


def _error_response(
    status: int, message: str, *, retry_after: float | None = None, retryable: bool | None = None
) -> web.Response:
    request_id = _random_id("req_011")
    headers = {"request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if retryable is not None:
        headers["x-should-retry"] = "true" if retryable else "false"
    body = _error_body(status, message, request_id)
    return web.json_response(body, status=status, headers=headers)


def _rejection(
    headers: Mapping[str, str], body: Any, api_key: str | None, schema: type[BaseModel]
) -> web.Response | None:
    """The 400 or 401 a real server answers a malformed request with, else `None`."""
    bearer = headers.get("authorization", "").removeprefix("Bearer ")
    key = (headers.get("x-api-key") or bearer).strip()
    if not key:
        return _error_response(401, "x-api-key or Authorization header is required")
    if api_key is not None and key != api_key:
        return _error_response(401, "invalid x-api-key")
    if "anthropic-version" not in headers:
        return _error_response(400, "anthropic-version: header is required")
    try:
        schema.model_validate(body)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _error_response(400, f"{where}: {first['msg']}")
    return None


def _build_message(turn: TextTurn | ToolUseTurn, body: Mapping[str, Any]) -> dict[str, Any]:
    """Render a turn as the response to `body`, cut proportionally to fit its `max_tokens`.

    A cut reply reports `stop_reason: "max_tokens"` and drops its tool calls, as the real API
    would leave them unusable.
    """
    calls = turn.calls if isinstance(turn, ToolUseTurn) else ()
    text = turn.text
    output_tokens = turn.output_tokens
    if output_tokens is None:
        output_tokens = estimate_tokens(text) + sum(
            estimate_tokens({"name": c.name, "input": c.input}) for c in calls
        )
    stop_reason = "tool_use" if calls else "end_turn"
    max_tokens: int = body["max_tokens"]
    if output_tokens > max_tokens:
        text = text[: len(text) * max_tokens // output_tokens]
        calls, output_tokens, stop_reason = (), max_tokens, "max_tokens"
    content: list[dict[str, Any]] = []
    if text or isinstance(turn, TextTurn):
        content.append({"type": "text", "text": text})
    content.extend(
        {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.input)} for c in calls
    )
    input_tokens = turn.input_tokens if turn.input_tokens is not None else _estimate_input(body)
    return {
        "id": _random_id("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": turn.cache_creation_input_tokens,
            "cache_read_input_tokens": turn.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": turn.cache_creation_input_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }


def _chunks(text: str) -> list[str]:
    return [text[i : i + _STREAM_CHUNK] for i in range(0, len(text), _STREAM_CHUNK)]


def _stream_events(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Split a message into the SSE events the real API streams for it."""
    usage = dict(message["usage"])
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"])]
        else:
            opening = {**block, "input": {}}
            pieces = ["", *_chunks(json.dumps(block["input"]))]
            deltas = [{"type": "input_json_delta", "partial_json": c} for c in pieces]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": index})
    usage.pop("cache_creation", None)
    usage.pop("service_tier", None)
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append({"type": "message_delta", "delta": delta, "usage": usage})
    events.append({"type": "message_stop"})
    return events


class AnthropicEmulator(LoopbackServer):
    """An in-process HTTP server on 127.0.0.1 answering Messages API calls from a script.

    Use it as an async context manager; `base_url` is valid inside the block. Replies are taken
    from the script in order, one per `POST /v1/messages`; `count_tokens` does not consume them.
    """

    def __init__(self, *turns: Turn, api_key: str | None = None,
                 tokens_per_byte: bool = False) -> None:
        """Prepare the emulator without binding a port.

        Args:
            *turns: Initial script, same as calling `script(*turns)`.
            api_key: If given, any other `x-api-key` is rejected with 401; otherwise any key passes.
            tokens_per_byte: Count input as adversarially as a byte-level tokenizer can
                (`count_bytes`) instead of about four characters a token.
        """
        self.requests: list[RecordedRequest] = []
        self.tokens_per_byte = tokens_per_byte
        self.answered = 0
        """How many scripted turns were sent back (a client that hung up got none)."""
        self._queue: deque[Turn] = deque(turns)
        self._api_key = api_key

    @property
    def pending(self) -> int:
        """Scripted turns not consumed yet, to assert a test used exactly what it scripted."""
        return len(self._queue)

    def script(self, *turns: Turn) -> None:
        """Append replies to the script."""
        self._queue.extend(turns)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self._messages),
            web.post("/v1/messages/count_tokens", self._count_tokens),
        ]

    async def _admit(
        self, request: web.Request, schema: type[BaseModel]
    ) -> dict[str, Any] | web.Response:
        """Record the request and return its body, or the 400/401 response a real server gives."""
        try:
            body: Any = json.loads(await request.read())
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(RecordedRequest(request.path, headers, body))
        rejected = _rejection(headers, body, self._api_key, schema)
        return body if rejected is None else rejected

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body = await self._admit(request, _CountTokensParams)
        if isinstance(body, web.Response):
            return body
        return web.json_response(
            {"input_tokens": _estimate_input(body)}, headers={"request-id": _random_id("req_011")}
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._admit(request, _MessageCreateParams)
        if isinstance(body, web.Response):
            return body
        if not self._queue:
            return _error_response(
                500,
                f"AnthropicEmulator script exhausted: no scripted turn left for request "
                f"#{len(self.requests)} ({request.path})",
                retryable=False,
            )
        turn = self._queue.popleft()
        await asyncio.sleep(turn.delay)
        streaming = body.get("stream") is True
        if isinstance(turn, ErrorTurn) and not (streaming and turn.in_stream):
            return _error_response(turn.status, turn.message, retry_after=turn.retry_after)
        if isinstance(turn, ErrorTurn):
            events = _stream_events(_build_message(TextTurn(""), body))[:2]
            error = _error_body(turn.status, turn.message, _random_id("req_011"))
            return await self._send_sse(request, [*events, error])
        message = _build_message(turn, body)
        if self.tokens_per_byte and turn.input_tokens is None:
            message["usage"]["input_tokens"] = count_bytes(body)
        self.answered += 1
        if streaming:
            return await self._send_sse(request, _stream_events(message))
        return web.json_response(message, headers={"request-id": _random_id("req_011")})

    async def _send_sse(
        self, request: web.Request, events: Sequence[Mapping[str, Any]]
    ) -> web.StreamResponse:
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        response = web.StreamResponse(headers={**headers, "request-id": _random_id("req_011")})
        await response.prepare(request)
        for event in events:
            chunk = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            await response.write(chunk.encode())
        await response.write_eof()
        return response
