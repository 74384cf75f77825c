"""The model wrapper meters every way a run can reach its model, and refuses the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.usage import RequestUsage
from sqlalchemy import select

from core.budget.account import RunAccount
from core.budget.ledger import used
from core.budget.meter import RunMeter
from core.builder import build_context
from core.db.engine import Database
from core.db.schema import usage_ledger
from core.errors import RunError
from core.metered_model import MeteredModel
from core.prices import price_for
from tests.support.tenancy import plan, tenant_on

PRICE = price_for("anthropic:claude-sonnet-4-5")
PROMPT: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart("hello")])]
USAGE = RequestUsage(input_tokens=40, output_tokens=7)


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("hello to you")], usage=USAGE)


async def answer_streamed(messages: list[ModelMessage],
                          info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    for piece in ("hello ", "to ", "you"):
        yield piece


async def metered(db: Database, model: Any) -> MeteredModel:
    await tenant_on(db, "acme", plan())
    grant = await build_context(db, tenant_id="acme", principal_id="alice")
    account = RunAccount(db, grant.ctx, RunMeter(grant.ctx), grant.plan, grant.period)
    return MeteredModel(model, account, PRICE, 4096)


async def ledger(db: Database) -> list[Any]:
    return await db.run(lambda conn: list(conn.execute(select(usage_ledger))))


async def test_a_streamed_request_is_reserved_settled_and_charged_like_any_other(
        db: Database) -> None:
    model = await metered(db, FunctionModel(stream_function=answer_streamed))
    async with model.request_stream(PROMPT, None, ModelRequestParameters()) as stream:
        texts = [event async for event in stream]
    assert texts, "the stream was passed through"
    response = stream.get()
    assert [p.content for p in response.parts if isinstance(p, TextPart)] == ["hello to you"]

    [row] = await ledger(db)
    assert (row.step_id, row.status, row.retried) == ("model:0", "settled", False)
    assert row.reserved_tokens > row.input_tokens + row.output_tokens > 0
    assert row.cost_microcents == PRICE.cost(input_tokens=row.input_tokens,
                                             output_tokens=row.output_tokens)
    assert row.response is not None and "hello to you" in row.response
    tokens, cost, _calls = await db.run(used, "acme", model.account.period)
    assert (tokens, cost) == (row.input_tokens + row.output_tokens, row.cost_microcents)
    assert model.account.meter.tokens == tokens


async def test_a_stream_the_caller_stops_reading_is_still_settled_in_full(db: Database) -> None:
    model = await metered(db, FunctionModel(stream_function=answer_streamed))
    async with model.request_stream(PROMPT, None, ModelRequestParameters()) as stream:
        async for _ in stream:
            break
    [row] = await ledger(db)
    assert row.status == "settled" and row.output_tokens > 0
    assert "hello to you" in row.response


class Recording(WrapperModel):
    """Stands for a provider: records every call that reaches it."""

    def __init__(self) -> None:
        super().__init__(FunctionModel(answer))
        self.reached: list[str] = []

    async def count_tokens(self, *args: Any, **kwargs: Any) -> Any:
        self.reached.append("count_tokens")
        return RequestUsage(input_tokens=1)

    async def compact_messages(self, *args: Any, **kwargs: Any) -> ModelResponse:
        self.reached.append("compact_messages")
        return ModelResponse(parts=[TextPart("compacted")])

    async def batch_create(self, *args: Any, **kwargs: Any) -> Any:
        self.reached.append("batch_create")
        return None


@pytest.mark.parametrize("method", ["count_tokens", "compact_messages", "batch_create"])
async def test_a_call_the_meter_does_not_cover_never_reaches_the_provider(
        db: Database, method: str) -> None:
    provider = Recording()
    model = await metered(db, provider)
    with pytest.raises(RunError, match="unmetered"):
        await getattr(model, method)(PROMPT, None, ModelRequestParameters())
    assert provider.reached == []
    assert await ledger(db) == []


async def test_a_plain_request_is_charged_what_the_provider_reported(db: Database) -> None:
    model = await metered(db, FunctionModel(answer))
    response = await model.request(PROMPT, None, ModelRequestParameters())
    assert response.usage == USAGE
    [row] = await ledger(db)
    assert (row.input_tokens, row.output_tokens) == (40, 7)
    assert row.cost_microcents == PRICE.cost(input_tokens=40, output_tokens=7)
