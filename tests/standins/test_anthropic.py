"""Tests of the Anthropic Messages API emulator, driven through the real SDK and pydantic-ai.

Going through the real clients is the point: the emulator is only useful if the production
parsing, retry and error-mapping code accepts what it sends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest
import pytest_asyncio
from pydantic_ai import Agent
from pydantic_ai.exceptions import (
    ModelHTTPError,
    ModelOverloadedError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelServerError,
    ModelTimeoutError,
)
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.settings import ModelSettings

from standins.anthropic import (
    AnthropicEmulator,
    ErrorTurn,
    TextTurn,
    ToolCall,
    ToolUseTurn,
    estimate_tokens,
)

MODEL = "claude-sonnet-4-6"
USER: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hello"}]
CACHED = TextTurn(
    "Hi there, how can I help?",
    input_tokens=10,
    output_tokens=7,
    cache_read_input_tokens=100,
    cache_creation_input_tokens=20,
)
VALID_BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 16, "messages": USER}
HEADERS = {"x-api-key": "test", "anthropic-version": "2023-06-01"}


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[AnthropicEmulator]:
    async with AnthropicEmulator() as emulator:
        yield emulator


def _client(emu: AnthropicEmulator, max_retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test", base_url=emu.base_url, max_retries=max_retries)


def _agent(client: anthropic.AsyncAnthropic, settings: ModelSettings | None = None) -> Agent[None]:
    model = AnthropicModel(MODEL, provider=AnthropicProvider(anthropic_client=client))
    return Agent(model, model_settings={"max_tokens": 1024} if settings is None else settings)


async def _raw_post(emu: AnthropicEmulator, body: Any, headers: dict[str, str]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emu.base_url}/v1/messages", json=body, headers=headers) as response,
    ):
        return response.status, response.headers.get("request-id"), await response.json()


@pytest.mark.asyncio
async def test_sdk_text_turn_has_faithful_shape_and_usage(emu: AnthropicEmulator) -> None:
    emu.script(CACHED)
    async with _client(emu) as client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.id.startswith("msg_")
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", CACHED.text)]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (10, 7)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (100, 20)
    sent = emu.requests[0]
    assert (sent.path, sent.body["max_tokens"], sent.body["model"]) == ("/v1/messages", 64, MODEL)
    assert emu.pending == 0


@pytest.mark.asyncio
async def test_pydantic_ai_counts_cache_tokens_inside_input_tokens(emu: AnthropicEmulator) -> None:
    emu.script(CACHED)
    async with _client(emu) as client:
        result = await _agent(client).run("Hello")
    assert result.output == CACHED.text
    usage = result.response.usage
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (100, 20)
    assert usage.input_tokens == 10 + 100 + 20
    assert usage.output_tokens == 7
    assert usage.details["input_tokens"] == 10
    assert emu.requests[0].body.get("stream") in (False, None)


@pytest.mark.asyncio
async def test_pydantic_ai_streams_behind_the_scenes_without_max_tokens(
    emu: AnthropicEmulator,
) -> None:
    emu.script(CACHED)
    async with _client(emu) as client:
        result = await _agent(client, settings={}).run("Hello")
    assert result.output == CACHED.text
    assert result.response.usage.input_tokens == 130
    assert emu.requests[0].body["stream"] is True
    assert emu.requests[0].body["max_tokens"] > 21_333


@pytest.mark.asyncio
async def test_tool_use_turn_drives_an_agent_tool_call(emu: AnthropicEmulator) -> None:
    call = ToolCall("get_weather", {"city": "Paris"})
    emu.script(
        ToolUseTurn([call], text="Let me check."),
        TextTurn("It is sunny in Paris."),
    )
    seen: list[str] = []
    async with _client(emu) as client:
        agent = _agent(client)

        @agent.tool_plain
        def get_weather(city: str) -> str:
            """Report the weather for a city."""
            seen.append(city)
            return "sunny"

        result = await agent.run("Weather in Paris?")
    assert result.output == "It is sunny in Paris."
    assert seen == ["Paris"]
    assert call.id.startswith("toolu_")
    first, second = emu.requests
    assert first.tool_names == ["get_weather"]
    results = [
        block
        for message in second.body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert [r["tool_use_id"] for r in results] == [call.id]
    assert "sunny" in str(results[0]["content"])
    assert result.usage.requests == 2 and result.usage.tool_calls == 1


@pytest.mark.asyncio
async def test_sdk_honours_retry_after_then_succeeds(emu: AnthropicEmulator) -> None:
    emu.script(ErrorTurn.rate_limited(retry_after=0.05), TextTurn("ok"))
    async with _client(emu, max_retries=2) as client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert message.content[0].type == "text" and message.content[0].text == "ok"
    assert [r.headers["x-stainless-retry-count"] for r in emu.requests] == ["0", "1"]


@pytest.mark.asyncio
async def test_429_body_and_headers_match_the_real_api(emu: AnthropicEmulator) -> None:
    emu.script(ErrorTurn.rate_limited(retry_after=7))
    async with _client(emu) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["request-id"].startswith("req_")
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": ErrorTurn.rate_limited().message},
        "request_id": caught.value.response.headers["request-id"],
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("turn", "category"),
    [
        (ErrorTurn.overloaded(retry_after=0.01), ModelOverloadedError),
        (ErrorTurn.rate_limited(retry_after=0.01), ModelRateLimitError),
        (ErrorTurn.server_error(retry_after=0.01), ModelServerError),
    ],
)
async def test_exhausted_retries_surface_as_model_http_error(
    emu: AnthropicEmulator, turn: ErrorTurn, category: type[Exception]
) -> None:
    emu.script(turn, turn)
    async with _client(emu, max_retries=1) as client:
        with pytest.raises(ModelHTTPError) as caught:
            await _agent(client).run("Hello")
    assert isinstance(caught.value, category)
    assert caught.value.status_code == turn.status
    assert len(emu.requests) == 2 and emu.pending == 0


@pytest.mark.asyncio
async def test_sdk_raises_overloaded_error_for_529(emu: AnthropicEmulator) -> None:
    emu.script(ErrorTurn.overloaded())
    async with _client(emu) as client:
        with pytest.raises(anthropic.OverloadedError) as caught:
            await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert caught.value.status_code == 529


@pytest.mark.asyncio
async def test_overload_inside_a_stream_is_mapped(emu: AnthropicEmulator) -> None:
    emu.script(ErrorTurn.overloaded(in_stream=True))
    async with _client(emu) as client:
        with pytest.raises(ModelOverloadedError) as caught:
            await _agent(client, settings={}).run("Hello")
    assert isinstance(caught.value, ModelHTTPError) and caught.value.status_code == 529


@pytest.mark.asyncio
async def test_delayed_reply_is_cancelled_cleanly_by_asyncio_timeout(
    emu: AnthropicEmulator,
) -> None:
    emu.script(TextTurn("too late", delay=30), TextTurn("on time"))
    started = time.perf_counter()
    async with _client(emu) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await _agent(client).run("Hello")
        result = await _agent(client).run("Again")
    assert result.output == "on time"
    assert time.perf_counter() - started < 5


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("settings", "error"),
    [({"timeout": 0.2}, ModelTimeoutError), ({"request_timeout": 0.2}, ModelRequestTimeout)],
)
async def test_delayed_reply_hits_pydantic_ai_timeouts(
    emu: AnthropicEmulator, settings: ModelSettings, error: type[Exception]
) -> None:
    emu.script(TextTurn("too late", delay=30))
    async with _client(emu) as client:
        with pytest.raises(error):
            await _agent(client, settings={"max_tokens": 64, **settings}).run("Hello")


@pytest.mark.asyncio
async def test_sdk_stream_yields_text_deltas_and_final_usage(emu: AnthropicEmulator) -> None:
    emu.script(CACHED)
    async with (
        _client(emu) as client,
        client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream,
    ):
        chunks = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(chunks) > 1 and "".join(chunks) == CACHED.text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 7)
    assert final.usage.cache_read_input_tokens == 100
    assert emu.requests[0].body["stream"] is True


@pytest.mark.asyncio
async def test_sdk_stream_rebuilds_tool_input_from_json_deltas(emu: AnthropicEmulator) -> None:
    call = ToolCall("search", {"query": "long enough to span several deltas", "limit": 3})
    emu.script(ToolUseTurn([call]))
    async with (
        _client(emu) as client,
        client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream,
    ):
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == (call.id, "search", call.input)
    assert final.stop_reason == "tool_use"


@pytest.mark.asyncio
async def test_pydantic_ai_run_stream(emu: AnthropicEmulator) -> None:
    emu.script(CACHED)
    async with _client(emu) as client:
        async with _agent(client).run_stream("Hello") as result:
            text = [t async for t in result.stream_text(debounce_by=None)]
        usage = result.usage
    assert text[-1] == CACHED.text
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (130, 100, 20)
    assert emu.requests[0].body["stream"] is True


@pytest.mark.asyncio
async def test_output_beyond_max_tokens_is_truncated(emu: AnthropicEmulator) -> None:
    emu.script(TextTurn("abcdefghij", output_tokens=10))
    async with _client(emu) as client:
        message = await client.messages.create(model=MODEL, max_tokens=4, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 4
    assert message.content[0].type == "text" and message.content[0].text == "abcd"


@pytest.mark.asyncio
async def test_count_tokens_is_deterministic_and_consumes_no_turn(emu: AnthropicEmulator) -> None:
    emu.script(TextTurn("unused"))
    async with _client(emu) as client:
        counts = [(await client.messages.count_tokens(model=MODEL, messages=USER)) for _ in "ab"]
    assert counts[0].input_tokens == counts[1].input_tokens == estimate_tokens({"messages": USER})
    assert emu.pending == 1
    assert emu.requests[0].path == "/v1/messages/count_tokens"


@pytest.mark.asyncio
async def test_exhausted_script_fails_fast_without_sdk_retries(emu: AnthropicEmulator) -> None:
    async with _client(emu, max_retries=2) as client:
        with pytest.raises(anthropic.InternalServerError, match="script exhausted"):
            await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert len(emu.requests) == 1


@pytest.mark.asyncio
async def test_wrong_api_key_is_rejected() -> None:
    async with (
        AnthropicEmulator(TextTurn("x"), api_key="right") as emu,
        _client(emu) as client,
    ):
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
        assert emu.pending == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("drop", "status", "error_type"),
    [
        ("x-api-key", 401, "authentication_error"),
        ("anthropic-version", 400, "invalid_request_error"),
    ],
)
async def test_missing_headers_are_rejected(
    emu: AnthropicEmulator, drop: str, status: int, error_type: str
) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != drop}
    code, request_id, body = await _raw_post(emu, VALID_BODY, headers)
    assert (code, body["type"], body["error"]["type"]) == (status, "error", error_type)
    assert request_id is not None and body["request_id"] == request_id
    assert emu.requests[0].headers.get(drop) is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": 16, "messages": USER},
        {"model": MODEL, "messages": USER},
        {"model": MODEL, "max_tokens": 0, "messages": USER},
        {"model": MODEL, "max_tokens": True, "messages": USER},
        {"model": MODEL, "max_tokens": 16, "messages": []},
        {"model": MODEL, "max_tokens": 16, "messages": [{"role": "system", "content": "x"}]},
        ["not", "an", "object"],
    ],
)
async def test_invalid_bodies_are_rejected(emu: AnthropicEmulator, body: Any) -> None:
    emu.script(TextTurn("unused"))
    code, _, reply = await _raw_post(emu, body, HEADERS)
    assert (code, reply["error"]["type"]) == (400, "invalid_request_error")
    assert emu.pending == 1 and emu.requests[0].body == body


@pytest.mark.asyncio
async def test_raw_post_with_x_api_key_succeeds(emu: AnthropicEmulator) -> None:
    emu.script(TextTurn("fine"))
    code, _, reply = await _raw_post(emu, VALID_BODY, HEADERS)
    assert code == 200 and reply["content"] == [{"type": "text", "text": "fine"}]
