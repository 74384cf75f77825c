"""What an MCP client is told of a run's outcome: the one place for its words."""

from __future__ import annotations

from typing import Any

from mcp import types
from pydantic_core import to_json

from core.agent import RunOutcome
from core.runs import SESSION_HEADER, SESSION_RULE


def _text(text: str, *, error: bool = False,
          structured: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structuredContent=structured, isError=error)


def refused(message: str) -> types.CallToolResult:
    """A call that never ran: its run was refused, or its tool is not the caller's."""
    return _text(f"refused: {message}", error=True)


def bad_session() -> types.CallToolResult:
    """A call naming a session id no transport takes: nothing ran."""
    return refused(f"{SESSION_HEADER} must be {SESSION_RULE}")


def tool_result(outcome: RunOutcome) -> types.CallToolResult:
    """A direct tool call's outcome: its result, or why there is none (the ceiling a
    halt reached, the refusal, the failure), with the run id to look it up."""
    if outcome.status == "completed":
        result = outcome.result
        failed = isinstance(result, dict) and "error" in result
        return _text(to_json(result).decode(), error=failed,
                     structured=result if isinstance(result, dict) else None)
    return _text(f"{_ending(outcome)} (run {outcome.run_id})", error=True)


def answer(outcome: RunOutcome) -> types.CallToolResult:
    """An ``ask`` run's answer, or why it has none."""
    if outcome.status == "completed" and outcome.answer is not None:
        return _text(outcome.answer)
    return _text(f"{_ending(outcome)} (run {outcome.run_id})", error=True)


def _ending(outcome: RunOutcome) -> str:
    if outcome.status == "halted" and outcome.halt is not None:
        return f"halted: {outcome.halt.get('message') or outcome.halt['ceiling']}"
    if outcome.status == "refused":
        return f"refused: {outcome.error}"
    return f"failed: {outcome.error}"
