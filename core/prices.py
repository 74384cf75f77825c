"""Dated, versioned model prices in integer microcents per million tokens.

A cost is computed per request and rounded up to the next microcent, so a sum of
request costs never undercounts what the provider bills. Adding a model or a new
price is adding a row here with a new ``version``; ledger rows keep the version they
were charged at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from core.errors import ConfigurationError

MICROCENTS_PER_DOLLAR = 100 * 1_000_000
PER_MILLION = 1_000_000


def dollars(amount: float) -> int:
    """A dollar amount per million tokens, as microcents per million tokens."""
    return round(amount * MICROCENTS_PER_DOLLAR)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What one model costs, per million tokens of each kind."""

    model: str
    version: str
    effective: date
    input: int
    output: int
    cache_read: int
    cache_write: int

    def cost(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> int:
        """Cost of one request in microcents, rounded up."""
        total = (
            input_tokens * self.input
            + output_tokens * self.output
            + cache_read_tokens * self.cache_read
            + cache_write_tokens * self.cache_write
        )
        return -(-total // PER_MILLION)

    def input_bound(self, tokens: int) -> int:
        """The most ``tokens`` of input can cost, whatever the provider bills them as.

        A cache write is the dearest way to bill input tokens.
        """
        return -(-tokens * max(self.input, self.cache_write, self.cache_read) // PER_MILLION)


def _anthropic(model: str, inp: float, out: float) -> ModelPrice:
    # Anthropic bills 5-minute cache writes at 1.25x input and cache reads at 0.1x input.
    return ModelPrice(
        model=model,
        version="2026-11-01",
        effective=date(2026, 11, 1),
        input=dollars(inp),
        output=dollars(out),
        cache_read=dollars(inp * 0.1),
        cache_write=dollars(inp * 1.25),
    )


PRICES: dict[str, ModelPrice] = {
    p.model: p
    for p in (
        _anthropic("anthropic:claude-opus-4-5", 5.0, 25.0),
        _anthropic("anthropic:claude-sonnet-4-5", 3.0, 15.0),
        _anthropic("anthropic:claude-haiku-4-5", 1.0, 5.0),
        # The offline sandbox bills like Haiku so budgets, halts and reports behave as
        # they would in production; no money is spent.
        ModelPrice(
            model="sandbox",
            version="2026-11-01",
            effective=date(2026, 11, 1),
            input=dollars(1.0),
            output=dollars(5.0),
            cache_read=dollars(0.1),
            cache_write=dollars(1.25),
        ),
    )
}


def price_for(model: str) -> ModelPrice:
    """The current price of ``model``; an unknown model is a configuration error.

    Tenantry refuses to run a model it cannot price, since it could not enforce a
    cost ceiling for it.
    """
    try:
        return PRICES[model]
    except KeyError:
        known = ", ".join(sorted(PRICES))
        raise ConfigurationError(f"unknown model id {model!r}; known models: {known}") from None


def format_microcents(amount: int) -> str:
    """A human-readable dollar amount, exact to the microcent when small."""
    dollars_value = amount / MICROCENTS_PER_DOLLAR
    if amount and abs(dollars_value) < 0.01:
        return f"${dollars_value:.8f}".rstrip("0")
    return f"${dollars_value:,.4f}"
