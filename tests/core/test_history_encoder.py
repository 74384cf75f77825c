"""Checkpoint encoding: the incremental encoder writes exactly what a full dump would."""

from __future__ import annotations

from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from core.agent import HistoryEncoder


def _turn(i: int) -> list[ModelMessage]:
    return [
        ModelRequest(parts=[UserPromptPart(f"prompt {i} with \u00e9 and \"quotes\"")]),
        ModelResponse(parts=[TextPart("x" * i), ToolCallPart("bump", {"by": i}, f"c{i}")]),
        ModelRequest(parts=[ToolReturnPart("bump", {"value": i}, f"c{i}")]),
    ]


def test_each_checkpoint_equals_a_full_dump_of_the_history_so_far() -> None:
    encoder = HistoryEncoder()
    history: list[ModelMessage] = []
    assert encoder.encode(history) == b"[]"
    for i in range(8):
        for message in _turn(i):
            history.append(message)
            assert encoder.encode(history) == ModelMessagesTypeAdapter.dump_json(history)


def test_a_history_that_differs_from_the_one_encoded_before_is_encoded_afresh() -> None:
    encoder = HistoryEncoder()
    history = [m for i in range(4) for m in _turn(i)]
    encoder.encode(history)
    replaced = list(history)
    replaced[2] = ModelRequest(parts=[UserPromptPart("another request")])
    assert encoder.encode(replaced) == ModelMessagesTypeAdapter.dump_json(replaced)
    shorter = history[:5]
    assert encoder.encode(shorter) == ModelMessagesTypeAdapter.dump_json(shorter)
