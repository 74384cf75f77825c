"""The budget wrapper around the model: reserve, call under a deadline, settle.

Every way a run can call its model goes through ``MeteredModel``, and anything it
does not meter raises instead of reaching the provider. A request, streamed or not:

1. its step id is derived from the history (``model:<n>`` for the n-th response), so
   a replayed request finds the response it already paid for and returns it;
2. the worst case (estimated input + ``max_tokens``) is checked against the run's
   ceilings, ``max_tokens`` is lowered to what is left, and the same worst case is
   reserved against the tenant's month and committed (``RunAccount.open_attempt``);
3. the provider is called under the run's walltime deadline;
4. the settlement, with the response to replay, is committed as soon as the
   response is complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from pydantic_ai import RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_core import to_json

from core.budget.account import RunAccount
from core.budget.ledger import Reservation, settle
from core.budget.meter import TokenUsage
from core.checkpoints import SETTLED_AFTER, common_prefix
from core.errors import BudgetExceeded, ModelFailed, RunError
from core.logs import log
from core.prices import ModelPrice

PART_FRAMING = 16
"""Tokens allowed for the framing of one message part (role and block markers)."""
TOOLS_PREAMBLE = 500
"""Tokens allowed for what a provider adds when it is offered tools (Anthropic's tool-use
system prompt is a few hundred)."""


class InputEstimate:
    """An upper bound of a request's input tokens, without calling the provider.

    A byte-level tokenizer makes at most one token of each UTF-8 byte, so the bound is
    the bytes the provider will tokenise (texts, tool arguments and results,
    instructions, tool schemas) plus an allowance per message part and for tools.
    Settling corrects it to the provider's count, which can only be lower: a charge
    never grows after its reservation, so concurrent runs cannot overspend the month.

    A request resends the run's whole history, so measuring all of it at every step
    would grow with the run (tool results are serialised to be measured). Messages
    at least ``SETTLED_AFTER`` from the end are measured once and remembered while
    the history still starts with them; the newest are measured afresh.
    """

    def __init__(self) -> None:
        self._measured: list[tuple[ModelMessage, int, int]] = []
        """Settled messages with the running totals of characters and parts up to them."""

    def of(self, messages: Sequence[ModelMessage], parameters: ModelRequestParameters) -> int:
        """The estimate for a request of ``messages`` with ``parameters``' tools."""
        settled = max(0, len(messages) - SETTLED_AFTER)
        kept = common_prefix([m for m, _, _ in self._measured], messages, settled)
        del self._measured[kept:]
        size, parts = self._measured[-1][1:] if self._measured else (0, 0)
        for index, message in enumerate(messages[kept:], start=kept):
            more_size, more_parts = _measure(message)
            size, parts = size + more_size, parts + more_parts
            if index < settled:
                self._measured.append((message, size, parts))
        tools = parameters.function_tools
        for tool in tools:
            size += _bytes(tool.name) + _bytes(tool.description or "")
            size += len(to_json(tool.parameters_json_schema))
        return size + PART_FRAMING * (parts + 1) + (TOOLS_PREAMBLE if tools else 0)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _measure(message: ModelMessage) -> tuple[int, int]:
    """The UTF-8 bytes a provider tokenises in ``message``, and its number of parts."""
    size = 0
    if isinstance(message, ModelRequest) and message.instructions:
        size += _bytes(message.instructions)
    for part in message.parts:
        if isinstance(part, ToolCallPart):
            size += _bytes(part.tool_name) + _bytes(part.args_as_json_str())
            continue
        content = getattr(part, "content", "")
        size += _bytes(content) if isinstance(content, str) else len(to_json(content))
    return size, len(message.parts)


def usage_of(response: ModelResponse) -> TokenUsage:
    """The provider's usage, with cached tokens taken out of ``input_tokens``.

    pydantic-ai counts cache reads and writes inside ``input_tokens``; they are priced
    differently, so the ledger keeps them apart.
    """
    u = response.usage
    return TokenUsage(
        input_tokens=max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens),
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
    )


def model_step_id(messages: Sequence[ModelMessage]) -> str:
    """``model:<n>``: the n-th model response of the run, stable across a resume."""
    return f"model:{sum(isinstance(m, ModelResponse) for m in messages)}"


@dataclass(frozen=True, slots=True)
class _Attempt:
    """A reserved model call: its reservation, its settings and what it asked for."""

    held: Reservation
    settings: ModelSettings
    wanted_max_tokens: int
    estimated_input: int


class MeteredModel(WrapperModel):
    """Wraps the provider model with the run's budget: every call reserved, then settled."""

    def __init__(self, wrapped: Model, account: RunAccount, price: ModelPrice,
                 default_max_tokens: int) -> None:
        super().__init__(wrapped)
        self.account = account
        self.price = price
        self.default_max_tokens = default_max_tokens
        self.estimate = InputEstimate()

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Reserve, call under the deadline, settle; replay a response already paid for."""
        stored = self._replayed(messages)
        if stored is not None:
            return stored
        attempt = await self._reserve(messages, model_settings, model_request_parameters)
        try:
            async with asyncio.timeout(self.account.meter.remaining_s()):
                response = await self.wrapped.request(messages, attempt.settings,
                                                      model_request_parameters)
        except Exception as exc:
            await self._unanswered(attempt, exc)
        await self._settle(attempt, response)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """``request``, streamed: reserved before, settled once the stream is complete.

        A response already paid for is not replayed as a stream: a resumed run gets it
        through ``request`` (a run resumes without streaming).
        """
        if self._replayed(messages) is not None:
            raise RunError("a response already paid for is replayed, never streamed again")
        attempt = await self._reserve(messages, model_settings, model_request_parameters)
        try:
            async with asyncio.timeout(self.account.meter.remaining_s()), \
                    self.wrapped.request_stream(messages, attempt.settings,
                                                model_request_parameters, run_context) as stream:
                yield stream
                async for _ in stream:  # the caller may stop early: read the rest
                    pass
        except Exception as exc:
            await self._unanswered(attempt, exc)
        await self._settle(attempt, stream.get())

    def _replayed(self, messages: Sequence[ModelMessage]) -> ModelResponse | None:
        stored = self.account.replay.responses.get(model_step_id(messages))
        if stored is None:
            return None
        response = ModelMessagesTypeAdapter.validate_json(stored)[0]
        assert isinstance(response, ModelResponse)
        return response

    async def _reserve(
        self, messages: Sequence[ModelMessage], model_settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> _Attempt:
        acc = self.account
        wanted = int((model_settings or {}).get("max_tokens") or self.default_max_tokens)
        estimate = self.estimate.of(messages, parameters)
        max_tokens = acc.meter.before_model_call(estimate, wanted, self.price)
        step = model_step_id(messages)
        log.debug("model call", step=step, estimate=estimate, max_tokens=max_tokens)
        held = await acc.open_attempt(
            step, "model", tokens=estimate + max_tokens,
            cost_microcents=self.price.input_bound(estimate)
            + self.price.cost(input_tokens=0, output_tokens=max_tokens),
            tool_calls=0, price=self.price,
        )
        settings: ModelSettings = {**(model_settings or {}), "max_tokens": max_tokens}
        return _Attempt(held, settings, wanted, estimate)

    async def _unanswered(self, attempt: _Attempt, exc: Exception) -> NoReturn:
        """Close the attempt of a call that never answered, and say why the run stops.

        On a timeout the input was sent, so its estimate is charged; the output
        reservation is released. The attempt is retried work: a resume redoes it. A
        cancelled call (a shutdown) stays reserved: the resume charges its worst case.
        """
        acc = self.account
        timed_out = isinstance(exc, TimeoutError)
        usage = TokenUsage(input_tokens=attempt.estimated_input if timed_out else 0)
        cost = self.price.cost(input_tokens=usage.input_tokens, output_tokens=0)
        await acc.abandon(attempt.held, usage=usage, cost_microcents=cost)
        acc.meter.after_model_call(usage, cost)
        if timed_out:
            raise acc.meter.out_of_time() from None
        raise ModelFailed(f"model request failed: {type(exc).__name__}: {exc}") from exc

    async def _settle(self, attempt: _Attempt, response: ModelResponse) -> None:
        """Commit what the response used and the response itself (to replay it).

        A response cut short by the limit the budget lowered is worth nothing (a
        truncated answer or tool call): it is paid for as retried work and the run
        halts; a resume redoes it with a fresh allocation.
        """
        acc = self.account
        usage = usage_of(response)
        if usage.total > attempt.held.tokens:
            log.warning("the provider counted more tokens than the reservation's bound",
                        step=attempt.held.step_id, reserved=attempt.held.tokens,
                        counted=usage.total)
        cost = self.price.cost(
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        lowered = attempt.settings.get("max_tokens", 0) < attempt.wanted_max_tokens
        truncated = response.finish_reason == "length" and lowered
        replay = None if truncated else ModelMessagesTypeAdapter.dump_json([response]).decode()
        await acc.db.run(settle, attempt.held, usage=usage, cost_microcents=cost,
                         response=replay, retried=truncated)
        acc.meter.after_model_call(usage, cost)
        if truncated:
            raise BudgetExceeded("tokens", acc.meter.budget.token_ceiling, acc.meter.tokens)

    async def count_tokens(self, *args: Any, **kwargs: Any) -> Any:
        """Not metered, so not allowed: a run's provider calls all go through ``request``."""
        _unmetered("count_tokens")

    async def compact_messages(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Not metered, so not allowed (a compaction is a paid model call)."""
        _unmetered("compact_messages")

    async def batch_create(self, *args: Any, **kwargs: Any) -> Any:
        """Not metered, so not allowed (batches are paid outside the run's budget)."""
        _unmetered("batch_create")


def _unmetered(method: str) -> NoReturn:
    raise RunError(f"{method} would reach the model provider unmetered; Tenantry refuses it")
