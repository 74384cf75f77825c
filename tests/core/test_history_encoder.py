"""A run's growing history, handled once per message: checkpoint encoding (settled
messages are written once, and what a checkpoint stores always reads back as exactly
the full history) and the input estimate of each model request."""

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
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.tools import ToolDefinition

from core.checkpoints import SETTLED_AFTER, HistoryEncoder, HistoryWrite, joined
from core.metered_model import InputEstimate


def _turn(i: int) -> list[ModelMessage]:
    return [
        ModelRequest(parts=[UserPromptPart(f"prompt {i} with \u00e9 and \"quotes\"")]),
        ModelResponse(parts=[TextPart("x" * i), ToolCallPart("bump", {"by": i}, f"c{i}")]),
        ModelRequest(parts=[ToolReturnPart("bump", {"value": i}, f"c{i}")]),
    ]


class Stored:
    """What the checkpoint tables hold for one run, written as ``save_checkpoint`` does."""

    def __init__(self) -> None:
        self.segments: dict[int, bytes] = {}
        self.count = 0
        self.tail = b"[]"

    def write(self, history: HistoryWrite) -> None:
        if history.replace:
            self.segments.clear()
        if history.segment is not None:
            assert history.seq not in self.segments, "a segment is written once"
            self.segments[history.seq] = history.segment
        self.count, self.tail = history.total_segments, history.tail

    def history(self) -> bytes:
        return joined([self.segments[seq] for seq in range(self.count)] + [self.tail])


def test_every_checkpoint_reads_back_as_a_full_dump_of_the_history_so_far() -> None:
    encoder, stored = HistoryEncoder(), Stored()
    history: list[ModelMessage] = []
    stored.write(encoder.encode(history))
    assert stored.history() == b"[]"
    for i in range(8):
        for message in _turn(i):
            history.append(message)
            stored.write(encoder.encode(history))
            assert stored.history() == ModelMessagesTypeAdapter.dump_json(history)


def test_what_a_checkpoint_writes_does_not_grow_with_the_run() -> None:
    encoder = HistoryEncoder()
    history: list[ModelMessage] = []
    written = []
    for i in range(30):
        history.extend(_turn(i))
        write = encoder.encode(history)
        written.append(len(write.tail) + len(write.segment or b""))
    whole = len(ModelMessagesTypeAdapter.dump_json(history))
    assert max(written) < whole / 10  # a turn's worth, not the history's
    assert max(written[20:]) <= max(written[:10]) + 64


def test_a_history_that_differs_from_the_one_stored_replaces_its_segments() -> None:
    encoder, stored = HistoryEncoder(), Stored()
    history = [m for i in range(4) for m in _turn(i)]
    stored.write(encoder.encode(history))
    replaced = list(history)
    replaced[2] = ModelRequest(parts=[UserPromptPart("another request")])
    write = encoder.encode(replaced)
    assert write.replace and write.seq == 0
    stored.write(write)
    assert stored.history() == ModelMessagesTypeAdapter.dump_json(replaced)
    shorter = replaced[:5]
    stored.write(encoder.encode(shorter))
    assert stored.history() == ModelMessagesTypeAdapter.dump_json(shorter)


def test_a_resumed_run_appends_to_the_segments_its_checkpoint_has() -> None:
    first, stored = HistoryEncoder(), Stored()
    history = [m for i in range(3) for m in _turn(i)]
    stored.write(first.encode(history))
    settled = len(history) - SETTLED_AFTER
    resumed = HistoryEncoder(history[:settled], stored.count)
    history.extend(_turn(3))
    write = resumed.encode(history)
    assert not write.replace and write.seq == stored.count
    stored.write(write)
    assert stored.history() == ModelMessagesTypeAdapter.dump_json(history)


def _fresh_estimate(history: list[ModelMessage], parameters: ModelRequestParameters) -> int:
    return InputEstimate().of(history, parameters)


def test_a_runs_input_estimate_equals_measuring_the_whole_history_every_time() -> None:
    parameters = ModelRequestParameters(function_tools=[ToolDefinition(
        name="bump", description="Bump the counter.",
        parameters_json_schema={"type": "object", "properties": {"by": {"type": "integer"}}},
    )])
    estimate = InputEstimate()
    history: list[ModelMessage] = []
    for i in range(8):
        for message in _turn(i):
            history.append(message)
            assert estimate.of(history, parameters) == _fresh_estimate(history, parameters)
    assert estimate.of(history, parameters) > _fresh_estimate(history[:-3], parameters)
    replaced = list(history)
    replaced[1] = ModelResponse(parts=[TextPart("a much longer answer than before " * 20)])
    assert estimate.of(replaced, parameters) == _fresh_estimate(replaced, parameters)
    assert estimate.of(replaced, parameters) > _fresh_estimate(history, parameters)
