"""The budget wrapper around the model: reserve, call under a deadline, settle.

Every model request of a run goes through ``MeteredModel.request``:

1. the step id is derived from the history (``model:<n>`` for the n-th response), so
   a replayed request finds the response it already paid for and returns it;
2. the worst case (estimated input + ``max_tokens``) is checked against the run's
   ceilings, ``max_tokens`` is lowered to what is left, and the same worst case is
   reserved against the tenant's month;
3. the provider is called under the run's walltime deadline;
4. the settlement (the reported usage, and the response to replay) is deferred to
   the run's next transaction (``core.journal``), which commits it with the
   checkpoint and the next reservation: one commit per outside call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_core import to_json

from core.budget import MonthlyLedger, Replay, Reservation, RunMeter, TokenUsage
from core.context import TenantContext
from core.errors import BudgetExceeded, ModelFailed
from core.journal import RunJournal
from core.logs import log
from core.prices import ModelPrice
from core.runs import SETTLED_AFTER, common_prefix
from core.tenants import Plan

CHARS_PER_TOKEN = 3
"""A deliberately low ratio: over-estimating input only makes a reservation safer."""


class InputEstimate:
    """A conservative token estimate of a run's requests, without calling the provider.

    Counts the characters the provider will tokenise (texts, tool arguments and
    results, instructions, tool schemas) at ``CHARS_PER_TOKEN``, plus a per-part
    framing allowance. Over-estimating only makes a reservation safer; settling
    corrects it to the provider's count.

    A request resends the run's whole history, so measuring all of it at every step
    would grow with the run (tool results are serialised to be measured). Messages
    at least ``SETTLED_AFTER`` from the end are measured once and remembered while
    the history still starts with them; the newest are measured afresh.
    """

    def __init__(self) -> None:
        self._measured: list[tuple[ModelMessage, int, int]] = []
        """Settled messages with the running totals of characters and parts up to them."""

    def of(self, messages: list[ModelMessage], parameters: ModelRequestParameters) -> int:
        """The estimate for a request of ``messages`` with ``parameters``' tools."""
        settled = max(0, len(messages) - SETTLED_AFTER)
        kept = common_prefix([m for m, _, _ in self._measured], messages, settled)
        del self._measured[kept:]
        chars, parts = self._measured[-1][1:] if self._measured else (0, 0)
        for message in messages[kept:settled]:
            more_chars, more_parts = _measure(message)
            chars, parts = chars + more_chars, parts + more_parts
            self._measured.append((message, chars, parts))
        for message in messages[settled:]:
            more_chars, more_parts = _measure(message)
            chars, parts = chars + more_chars, parts + more_parts
        for tool in parameters.function_tools:
            chars += len(tool.name) + len(tool.description or "")
            chars += len(to_json(tool.parameters_json_schema))
        return chars // CHARS_PER_TOKEN + 8 * parts + 16


def _measure(message: ModelMessage) -> tuple[int, int]:
    """The characters a provider tokenises in ``message``, and its number of parts."""
    chars = 0
    if isinstance(message, ModelRequest) and message.instructions:
        chars += len(message.instructions)
    for part in message.parts:
        if isinstance(part, ToolCallPart):
            chars += len(part.tool_name) + len(part.args_as_json_str())
            continue
        content = getattr(part, "content", "")
        chars += len(content) if isinstance(content, str) else len(to_json(content))
    return chars, len(message.parts)


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


def model_step_id(messages: list[ModelMessage]) -> str:
    """``model:<n>``: the n-th model response of the run, stable across a resume."""
    return f"model:{sum(isinstance(m, ModelResponse) for m in messages)}"


@dataclass
class RunAccount:
    """What the wrappers of one run share: its context, meter, ledger and plan.

    ``replay`` holds what earlier allocations of the run recorded (empty for a new
    run), so the per-step replay checks cost no query. ``journal`` batches the
    allocation's writes (see ``core.journal``).
    """

    ctx: TenantContext
    meter: RunMeter
    ledger: MonthlyLedger
    plan: Plan
    period: str
    price: ModelPrice
    default_max_tokens: int
    refused_tools: int = 0
    replay: Replay = field(default_factory=Replay)
    estimate: InputEstimate = field(default_factory=InputEstimate)
    journal: RunJournal = field(init=False)

    def __post_init__(self) -> None:
        self.journal = RunJournal(self.ledger.db)


class MeteredModel(WrapperModel):
    """Wraps the provider model with the run's budget checks."""

    def __init__(self, wrapped: Model, account: RunAccount) -> None:
        super().__init__(wrapped)
        self.account = account

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Reserve, call under the deadline, settle; replay a response already paid for."""
        acc = self.account
        base_step = model_step_id(messages)
        attempts = acc.replay.attempts(base_step)
        for row in attempts:
            if row.status == "settled" and not row.retried and row.response is not None:
                return _stored_response(row.response)
        for row in attempts:
            if row.status == "reserved":
                acc.ledger.abandon(acc.journal, acc.ctx.run_id, row, acc.ctx.tenant_id)
        step_id = base_step if not attempts else f"{base_step}#{len(attempts) + 1}"

        wanted = int((model_settings or {}).get("max_tokens") or acc.default_max_tokens)
        estimate = acc.estimate.of(messages, model_request_parameters)
        max_tokens = acc.meter.before_model_call(estimate, wanted, acc.price)
        log.debug("model call", step_id=step_id, estimate=estimate, max_tokens=max_tokens)
        reservation = await acc.ledger.reserve(
            acc.ctx,
            acc.journal,
            plan=acc.plan,
            period=acc.period,
            step_id=step_id,
            kind="model",
            tokens=estimate + max_tokens,
            cost_microcents=acc.price.cost(input_tokens=estimate, output_tokens=max_tokens),
            tool_calls=0,
            price=acc.price,
        )
        acc.replay.opened(reservation)
        settings: ModelSettings = {**(model_settings or {}), "max_tokens": max_tokens}
        try:
            async with asyncio.timeout(acc.meter.remaining_s()):
                response = await self.wrapped.request(
                    messages, settings, model_request_parameters
                )
        except TimeoutError:
            self._charge_abandoned(reservation, estimate)
            raise BudgetExceeded(
                "walltime_ms", acc.meter.budget.walltime_ceiling_ms, acc.meter.elapsed_ms()
            ) from None
        except Exception as exc:
            self._charge_abandoned(reservation, 0)
            raise ModelFailed(f"model request failed: {type(exc).__name__}: {exc}") from exc
        usage = usage_of(response)
        cost = acc.price.cost(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        if response.finish_reason == "length" and max_tokens < wanted:
            # Cut short by the limit the budget lowered: a truncated answer or tool call is
            # worth nothing, so the step is paid for as retried work and the run halts;
            # a resume redoes it with a fresh allocation.
            acc.ledger.settle_later(
                acc.journal, reservation, usage=usage, cost_microcents=cost, tool_calls=0,
                retried=True,
            )
            acc.meter.after_model_call(usage, cost)
            raise BudgetExceeded("tokens", acc.meter.budget.token_ceiling, acc.meter.tokens)
        acc.ledger.settle_later(
            acc.journal, reservation, usage=usage, cost_microcents=cost, tool_calls=0,
            response=ModelMessagesTypeAdapter.dump_json([response]).decode(),
        )
        acc.meter.after_model_call(usage, cost)
        return response

    def _charge_abandoned(self, reservation: Reservation, input_tokens: int) -> None:
        """Close the step of a call that never answered.

        The input was sent, so its estimate is charged; the output reservation is
        released. The step is marked retried: a resume redoes it.
        """
        acc = self.account
        usage = TokenUsage(input_tokens=input_tokens)
        cost = acc.price.cost(input_tokens=input_tokens, output_tokens=0)
        acc.ledger.settle_later(
            acc.journal, reservation, usage=usage, cost_microcents=cost, tool_calls=0,
            retried=True,
        )
        acc.meter.after_model_call(usage, cost)


def _stored_response(text: str) -> ModelResponse:
    messages = ModelMessagesTypeAdapter.validate_json(text)
    response = messages[0]
    assert isinstance(response, ModelResponse)
    return response
