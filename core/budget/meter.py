"""The per-run meter: the context's four ceilings, checked before every call.

Limits are plain values (the context's ``Budget``); the loop calls the named checks at
fixed points (``before_model_call``, ``after_model_call``, ``before_tool_call``). A
failed check raises ``BudgetExceeded`` naming the ceiling, its limit and what was used.
Nothing here touches the database: the month is the ledger's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.context import TenantContext
from core.errors import BudgetExceeded
from core.prices import ModelPrice

MIN_OUTPUT_TOKENS = 64
"""A model call that could not write even this much is halted instead of truncated."""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """The usage of one model request, as the provider reported it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total(self) -> int:
        """Every token the request consumed, cached or not."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


class RunMeter:
    """Enforces one run's four ceilings, from the context's budget.

    The meter holds what this allocation of the run has settled plus what is
    reserved in flight; a resumed run gets a fresh meter from a fresh context.
    """

    def __init__(
        self, ctx: TenantContext, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = ctx.budget
        self._clock = clock
        self.started = clock()
        self.tokens = 0
        self.cost_microcents = 0
        self.tool_calls = 0

    @property
    def deadline(self) -> float:
        """The monotonic time by which every call of this allocation must be done."""
        return float(self.started + self.budget.walltime_ceiling_ms / 1000)

    def remaining_s(self) -> float:
        """Seconds left before the walltime ceiling; never negative."""
        return max(0.0, self.deadline - self._clock())

    def elapsed_ms(self) -> int:
        """Milliseconds since this allocation started."""
        return int((self._clock() - self.started) * 1000)

    def check_walltime(self) -> None:
        """Refuse to start anything once the walltime ceiling has passed."""
        elapsed = self.elapsed_ms()
        if elapsed >= self.budget.walltime_ceiling_ms:
            raise BudgetExceeded("walltime_ms", self.budget.walltime_ceiling_ms, elapsed)

    def out_of_time(self) -> BudgetExceeded:
        """The error of a call that the walltime deadline cut short."""
        return BudgetExceeded("walltime_ms", self.budget.walltime_ceiling_ms, self.elapsed_ms())

    def before_model_call(self, estimated_input: int, wanted_max_tokens: int,
                          price: ModelPrice) -> int:
        """The ``max_tokens`` the budget still allows for the next model request.

        Raises:
            BudgetExceeded: when not even ``MIN_OUTPUT_TOKENS`` of output fit the token
                or cost ceiling: a halted run can resume, a truncated answer cannot.
        """
        self.check_walltime()
        floor = min(MIN_OUTPUT_TOKENS, wanted_max_tokens)
        token_room = self.budget.token_ceiling - self.tokens - estimated_input
        if token_room < floor:
            raise BudgetExceeded(
                "tokens", self.budget.token_ceiling, self.tokens + max(0, estimated_input)
            )
        cost_room = self.budget.cost_ceiling_microcents - self.cost_microcents
        input_cost = price.input_bound(estimated_input)
        by_cost = (
            (cost_room - input_cost) * 1_000_000 // price.output if price.output else token_room
        )
        if by_cost < floor:
            raise BudgetExceeded(
                "cost_microcents",
                self.budget.cost_ceiling_microcents,
                self.cost_microcents + input_cost,
            )
        return int(min(wanted_max_tokens, token_room, by_cost))

    def after_model_call(self, usage: TokenUsage, cost_microcents: int) -> None:
        """Record a settled request; an overrun (provider miscount) halts the next check."""
        self.tokens += usage.total
        self.cost_microcents += cost_microcents

    def before_tool_call(self, declared_cost_microcents: int) -> None:
        """Refuse a tool call beyond the tool-call, cost or walltime ceiling."""
        self.check_walltime()
        if self.tool_calls + 1 > self.budget.tool_call_ceiling:
            raise BudgetExceeded("tool_calls", self.budget.tool_call_ceiling, self.tool_calls)
        if self.cost_microcents + declared_cost_microcents > self.budget.cost_ceiling_microcents:
            raise BudgetExceeded(
                "cost_microcents",
                self.budget.cost_ceiling_microcents,
                self.cost_microcents + declared_cost_microcents,
            )
        self.tool_calls += 1
        self.cost_microcents += declared_cost_microcents
