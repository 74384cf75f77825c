"""The offline sandbox model: deterministic replies, no LLM, labelled in every answer.

It exists so that ``make demo`` and the CLI can show the whole platform (tools,
budgets, halts, resumes, audit) on a machine without credentials. It is never
chosen silently: a run uses it only when asked for by name.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.tools import ToolDefinition

LABEL = "[sandbox model: offline, deterministic]"
_WORD = re.compile(r"[\w.]+")
_CAPABILITY = re.compile(r"\b[a-z]+\.[a-z_]+\b")


def _already_tried(messages: list[ModelMessage], capability: str) -> bool:
    name = capability.replace(".", "__")
    return any(isinstance(m, ModelResponse) and any(
        isinstance(p, ToolCallPart) and p.tool_name == name for p in m.parts) for m in messages)


def _last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def _wanted_tools(prompt: str, tools: list[ToolDefinition]) -> list[ToolDefinition]:
    """Tools the prompt names (``budget.status``), and search for questions."""
    words = {w.lower().rstrip(".") for w in _WORD.findall(prompt)}
    wanted = []
    for tool in tools:
        capability = tool.name.replace("__", ".")
        named = capability in words or tool.name in words
        searches = capability.endswith(".search") and prompt.rstrip().endswith("?")
        if named or searches:
            wanted.append(tool)
    return wanted


def _arguments(tool: ToolDefinition, prompt: str) -> dict[str, object]:
    schema = tool.parameters_json_schema
    args: dict[str, object] = {}
    for name in schema.get("required", []):
        kind = schema.get("properties", {}).get(name, {}).get("type")
        args[name] = 5 if kind == "integer" else prompt
    return args


_TOOL_NAME = re.compile(r"'[a-z0-9_]+__[a-z0-9_]+'")


def _summarise(parts: list[ToolReturnPart], offered: set[str]) -> str:
    lines = []
    for part in parts:
        content = part.content
        if part.tool_name not in offered:
            # pydantic-ai's own answer names the tool as the model sees it
            # ('budget__status'); a person reads the capability's name.
            content = "refused: not offered to this run"
        elif not isinstance(content, str):
            content = json.dumps(content, default=str)
        # A refusal's text names tools as the model sees them; people read capabilities.
        content = _TOOL_NAME.sub(lambda m: m[0].replace("__", "."), content)
        lines.append(f"- {part.tool_name.replace('__', '.')}: {content[:600]}")
    return "\n".join(lines)


def sandbox_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """One deterministic turn: call the tools the prompt asks for, then answer."""
    last = messages[-1] if messages else None
    answered = last.parts if isinstance(last, ModelRequest) else []
    returns = [p for p in answered if isinstance(p, ToolReturnPart)]
    # A request that only reports refused calls is answered too, or the run would loop.
    only_refusals = bool(answered) and all(isinstance(p, RetryPromptPart) for p in answered)
    prompt = _last_prompt(messages)
    offered = {tool.name for tool in info.function_tools}
    if returns or only_refusals:
        summary = _summarise(returns, offered)
        return ModelResponse(
            parts=[TextPart(f"{LABEL}\nHere is what the tools returned:\n{summary}")]
        )
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    # Like a model talked into it, the sandbox also asks for a named tool it was not
    # offered, so refusals can be shown offline.
    unoffered = [
        ToolCallPart(word.replace(".", "__"), {}, tool_call_id=f"sbx_{turn}_x{i}")
        for i, word in enumerate(sorted(set(_CAPABILITY.findall(prompt))))
        if word.replace(".", "__") not in offered and not _already_tried(messages, word)
    ]
    calls = unoffered + [
        ToolCallPart(tool.name, _arguments(tool, prompt), tool_call_id=f"sbx_{turn}_{i}")
        for i, tool in enumerate(_wanted_tools(prompt, info.function_tools))
    ]
    if calls:
        return ModelResponse(parts=calls)
    return ModelResponse(
        parts=[TextPart(f"{LABEL}\nYou asked: {prompt.strip()[:500]}\nNo tool was needed.")]
    )


Reply = Callable[[list[ModelMessage], AgentInfo], ModelResponse | Awaitable[ModelResponse]]
"""A function model's reply: the whole response to the messages so far."""

_PIECE = re.compile(r"\S+\s*|\s+")


def streamed(reply: Reply) -> Callable[[list[ModelMessage], AgentInfo],
                                      AsyncIterator[str | DeltaToolCalls]]:
    """``reply`` as a stream, as a provider sends it: text word by word, then tool calls."""
    async def stream(messages: list[ModelMessage],
                     info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        response = reply(messages, info)
        if inspect.isawaitable(response):
            response = await response
        calls: DeltaToolCalls = {}
        for index, part in enumerate(response.parts):
            if isinstance(part, TextPart):
                for piece in _PIECE.findall(part.content):
                    yield piece
            elif isinstance(part, ToolCallPart):
                calls[index] = DeltaToolCall(part.tool_name, part.args_as_json_str(),
                                             tool_call_id=part.tool_call_id)
        if calls:
            yield calls

    return stream


def sandbox_model() -> FunctionModel:
    """The sandbox model, named ``sandbox`` in usage and prices; it streams too."""
    return FunctionModel(sandbox_reply, stream_function=streamed(sandbox_reply),
                         model_name="sandbox")
