"""Scripted models and crash injection for agent-loop tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from core.db.engine import Database
from core.models import ModelFactory
from core.sandbox import streamed
from core.settings import Settings

T = TypeVar("T")


class Crash(BaseException):
    """A simulated process death: no ``except Exception`` handler sees it."""


def two_bumps(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Bump by 1, then by 10, then answer: three model steps, two tool steps."""
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    if turn == 0:
        return ModelResponse(parts=[ToolCallPart("counter__bump", {"by": 1}, tool_call_id="c1")])
    if turn == 1:
        return ModelResponse(parts=[ToolCallPart("counter__bump", {"by": 10}, tool_call_id="c2")])
    return ModelResponse(parts=[TextPart("bumped twice")])


class CrashPoints:
    """Counts crash-able moments and raises ``Crash`` at the chosen one."""

    def __init__(self, at: str | None = None) -> None:
        self.at = at
        self.seen: list[str] = []

    def hit(self, point: str) -> None:
        self.seen.append(point)
        if point == self.at:
            self.at = None
            raise Crash(point)


class CrashingModel(WrapperModel):
    """Crashes before a request is sent, or after the provider answered (before settling)."""

    def __init__(self, wrapped: Model, points: CrashPoints) -> None:
        super().__init__(wrapped)
        self.points = points
        self.calls = 0

    async def request(self, messages: list[ModelMessage], model_settings: ModelSettings | None,
                      model_request_parameters: ModelRequestParameters) -> ModelResponse:
        self.calls += 1
        self.points.hit(f"model{self.calls}:before")
        response = await super().request(messages, model_settings, model_request_parameters)
        self.points.hit(f"model{self.calls}:answered")
        return response


class CrashingDatabase(Database):
    """Crashes just before a watched kind of transaction, or just after it committed.

    ``watched`` names transaction functions (``save_checkpoint``: ``checkpoint``); the
    n-th such transaction offers the points ``checkpoint<n>:before`` and
    ``checkpoint<n>:after``.
    """

    def __init__(self, url: str, points: CrashPoints,
                 watched: dict[Callable[..., Any], str]) -> None:
        super().__init__(url)
        self.points = points
        self.watched = watched
        self.seen: dict[str, int] = {}

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        name = self.watched.get(work)
        if name is None:
            return await super().run(work, *args, **kwargs)
        count = self.seen[name] = self.seen.get(name, 0) + 1
        self.points.hit(f"{name}{count}:before")
        result = await super().run(work, *args, **kwargs)
        self.points.hit(f"{name}{count}:after")
        return result


class ScriptedModels(ModelFactory):
    """A model factory that serves one function model under every model id."""

    def __init__(self, settings: Settings,
                 function: Callable[[list[ModelMessage], AgentInfo],
                                    ModelResponse | Awaitable[ModelResponse]],
                 wrap: Callable[[Model], Model] | None = None) -> None:
        super().__init__(settings)
        self.function = function
        self.wrap = wrap

    def check(self, model_id: str) -> str:
        return model_id

    def get(self, model_id: str) -> Model:
        model: Model = FunctionModel(self.function, stream_function=streamed(self.function),
                                     model_name=model_id)
        return self.wrap(model) if self.wrap else model
