"""The production model path, end to end: AgentService -> MeteredModel -> AnthropicModel -> SDK.

Unit tests drive the loop with ``FunctionModel``; that skips everything between pydantic-ai
and the wire (usage parsing, ``max_tokens`` on the request, SDK retries, error mapping,
cancellation of an HTTP request by the walltime deadline). Here the real ``ModelFactory``
builds the real ``AnthropicModel`` over the real ``anthropic`` SDK, pointed at the loopback
emulator, so each test asserts what actually went over HTTP and what the ledger kept.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy import func, inspect, select, table, text
from sqlalchemy.engine import Connection

import core.agent
import core.metered_model
from core.agent import AgentService, RunOutcome
from core.audit.log import recent_events
from core.budget.meter import MIN_OUTPUT_TOKENS
from core.db.engine import Database
from core.db.schema import monthly_usage, tool_effects, usage_ledger
from core.errors import RunRefused
from core.logs import processors
from core.models import ModelFactory
from core.prices import price_for
from core.runs import RunRecord, get_run
from core.settings import Settings
from core.tenants import Plan, update_plan
from core.tools import CapabilityRegistry
from standins.anthropic import (
    AnthropicEmulator,
    ErrorTurn,
    RecordedRequest,
    TextTurn,
    ToolCall,
    ToolUseTurn,
    count_bytes,
)
from tests.support.auditing import audit_log
from tests.support.databases import fetch_all, fetch_one, fetch_value
from tests.support.tenancy import CounterCapability, plan, tenant_on

MODEL = "anthropic:claude-haiku-4-5"
API_KEY = "sk-ant-api03-TENANTRY-test-key-Zq7v9XkP2"
"""Distinctive enough that any leak of it, or of its tail, is found by a plain search."""
KEY_TAIL = API_KEY[-12:]
PRICE = price_for(MODEL)


@pytest.fixture
async def emu() -> AsyncIterator[AnthropicEmulator]:
    """The emulator only accepts ``API_KEY``: a request without our key cannot succeed."""
    async with AnthropicEmulator(api_key=API_KEY) as emulator:
        yield emulator


@pytest.fixture
def settings(database_url: str, tmp_path: Path, emu: AnthropicEmulator) -> Settings:
    """Production-shaped settings: a real Anthropic model id, key and endpoint (the emulator)."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        model=MODEL,
        anthropic_api_key=SecretStr(API_KEY),
        anthropic_base_url=emu.base_url,
        anthropic_max_retries=2,
    )


@pytest.fixture
async def models(settings: Settings) -> AsyncIterator[ModelFactory]:
    """The real factory; closed after the test so no HTTP connection outlives it."""
    factory = ModelFactory(settings)
    yield factory
    await factory.aclose()


@pytest.fixture
def counter() -> CounterCapability:
    """The tool the model can call; it counts its real executions per tenant."""
    return CounterCapability()


@pytest.fixture
def service(
    db: Database, settings: Settings, models: ModelFactory, counter: CounterCapability
) -> AgentService:
    """The production service over the production model factory."""
    return AgentService(db, settings, models, audit_log(db), CapabilityRegistry([counter]))


async def start(svc: AgentService, db: Database, the_plan: Plan | None = None) -> RunOutcome:
    """Put tenant ``acme`` on ``the_plan`` and start its first run."""
    await tenant_on(db, "acme", the_plan or plan())
    return await start_again(svc, db)


async def start_again(svc: AgentService, db: Database) -> RunOutcome:
    """Start another run of the existing tenant ``acme``."""
    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
    return await svc.start(grant, "bump the counter")


async def resume(svc: AgentService, db: Database, run_id: str) -> RunOutcome:
    """Resume ``run_id`` with a fresh allocation."""
    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"},
                           run_id=run_id)
    return await svc.resume(grant)


async def ledger_rows(db: Database, run_id: str) -> list[Any]:
    return await fetch_all(db, select(usage_ledger).where(usage_ledger.c.run_id == run_id)
                           .order_by(usage_ledger.c.created_at, usage_ledger.c.step_id))


async def month_row(db: Database) -> Any:
    return await fetch_one(db, select(monthly_usage).where(monthly_usage.c.tenant_id == "acme"))


async def run_record(db: Database, run_id: str) -> RunRecord:
    return await db.run(get_run, "acme", run_id)


def row_cost(row: Any) -> int:
    """What the price table says one ledger row's token counts cost."""
    return PRICE.cost(
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cache_write_tokens=row.cache_write_tokens,
    )


def row_tokens(row: Any) -> int:
    return int(row.input_tokens + row.output_tokens + row.cache_read_tokens
               + row.cache_write_tokens)


def tool_results(request: RecordedRequest) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks a request sent back to the model."""
    return [
        block
        for message in request.body["messages"]
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


CACHED_REPLY = TextTurn(
    "Hello from the cache.",
    input_tokens=10,
    output_tokens=7,
    cache_read_input_tokens=100,
    cache_creation_input_tokens=20,
)


async def test_usage_keeps_cache_tokens_apart_and_is_priced_exactly(
        db: Database, service: AgentService, emu: AnthropicEmulator,
        settings: Settings) -> None:
    emu.script(CACHED_REPLY)
    outcome = await start(service, db)

    assert (outcome.status, outcome.answer) == ("completed", "Hello from the cache.")
    [row] = await ledger_rows(db, outcome.run_id)
    assert (row.step_id, row.kind, row.status, row.retried) == ("model:0", "model", "settled",
                                                                 False)
    # pydantic-ai reports input_tokens=130 (cache included); the ledger keeps the 10 uncached.
    assert (row.input_tokens, row.output_tokens, row.cache_read_tokens,
            row.cache_write_tokens) == (10, 7, 100, 20)
    expected = PRICE.cost(input_tokens=10, output_tokens=7, cache_read_tokens=100,
                          cache_write_tokens=20)
    # $1 input, $5 output, $0.10 cache read, $1.25 cache write per million tokens.
    assert expected == 10 * 100 + 7 * 500 + 100 * 10 + 20 * 125 == 8_000
    assert row.cost_microcents == expected
    assert (row.model, row.price_version) == (MODEL, PRICE.version)

    # The run's totals count every token once, cached or not, at the same cost.
    usage = outcome.usage
    assert (usage.tokens, usage.output_tokens) == (10 + 7 + 100 + 20, 7)
    assert (usage.cost_microcents, usage.tool_calls, usage.retried_tokens) == (expected, 0, 0)
    record = await run_record(db, outcome.run_id)
    assert (record.status, record.cost_microcents, record.output_tokens) == (
        "completed", expected, 7)
    month = await month_row(db)
    assert (month.tokens, month.cost_microcents, month.tool_calls) == (137, expected, 0)

    [sent] = emu.requests
    assert sent.body["model"] == "claude-haiku-4-5"
    assert sent.body["max_tokens"] == settings.default_max_tokens, "a generous plan lowers nothing"
    assert sent.body.get("stream") in (None, False)


async def test_the_run_summary_keeps_cache_tokens_apart(
        db: Database, service: AgentService, emu: AnthropicEmulator) -> None:
    emu.script(CACHED_REPLY)
    outcome = await start(service, db)
    assert outcome.status == "completed"
    assert outcome.usage.cache_read_tokens == 100
    assert outcome.usage.cache_write_tokens == 20


async def test_a_tool_use_turn_runs_the_tool_once_and_the_answer_comes_back(
        db: Database, service: AgentService, emu: AnthropicEmulator,
        counter: CounterCapability) -> None:
    call = ToolCall("counter__bump", {"by": 3})
    emu.script(ToolUseTurn([call], text="Let me bump it."), TextTurn("The counter is now 3."))
    outcome = await start(service, db)

    assert (outcome.status, outcome.answer) == ("completed", "The counter is now 3.")
    assert counter.executions == {"acme": 3}, "the tool must run exactly once"
    first, second = emu.requests
    assert first.tool_names == second.tool_names == ["counter__bump"]
    [result] = tool_results(second)
    assert result["tool_use_id"] == call.id
    assert "3" in json.dumps(result.get("content"))

    rows = await ledger_rows(db, outcome.run_id)
    assert sorted(r.step_id for r in rows) == ["model:0", "model:1", f"tool:{call.id}"]
    assert all(r.status == "settled" and not r.retried for r in rows)
    model_rows = [r for r in rows if r.kind == "model"]
    assert all(r.cost_microcents == row_cost(r) > 0 for r in model_rows)
    tool_cost = CounterCapability().cost_microcents
    assert outcome.usage.cost_microcents == sum(row_cost(r) for r in model_rows) + tool_cost
    assert outcome.usage.tool_calls == 1
    effects = await fetch_all(db, select(tool_effects.c.step_id, tool_effects.c.result)
                              .where(tool_effects.c.run_id == outcome.run_id))
    assert [tuple(e) for e in effects] == [(f"tool:{call.id}", "3")]


RUN_TOKENS = 3_000


async def test_the_budget_lowers_max_tokens_sent_to_the_provider(
        db: Database, service: AgentService, emu: AnthropicEmulator,
        settings: Settings) -> None:
    emu.script(ToolUseTurn([ToolCall("counter__bump", {"by": 2})]), TextTurn("Bumped."))
    outcome = await start(service, db, plan(run_tokens=RUN_TOKENS))
    assert outcome.status == "completed"

    model_rows = [r for r in await ledger_rows(db, outcome.run_id) if r.kind == "model"]
    assert len(model_rows) == len(emu.requests) == 2
    used = 0
    for request, row in zip(emu.requests, model_rows, strict=True):
        sent = request.body["max_tokens"]
        assert MIN_OUTPUT_TOKENS <= sent < settings.default_max_tokens
        # The reservation is the whole rest of the run's token ceiling: estimated input
        # plus the max_tokens that went over the wire, priced as exactly that.
        assert row.reserved_tokens == RUN_TOKENS - used
        estimate = row.reserved_tokens - sent
        assert estimate > 0
        assert row.reserved_cost_microcents == (
            PRICE.input_bound(estimate) + PRICE.cost(input_tokens=0, output_tokens=sent))
        used += row_tokens(row)
    assert emu.requests[1].body["max_tokens"] < emu.requests[0].body["max_tokens"]
    assert outcome.usage.tokens == used <= RUN_TOKENS


async def test_a_ceiling_too_small_for_any_answer_refuses_the_run_before_anything_is_sent(
        db: Database, service: AgentService, emu: AnthropicEmulator) -> None:
    emu.script(TextTurn("never asked"))
    with pytest.raises(RunRefused) as refused:
        await start(service, db, plan(run_tokens=MIN_OUTPUT_TOKENS))
    assert refused.value.reason == "run_ceiling_too_small"
    assert "per-run ceiling" in str(refused.value)
    assert emu.requests == []
    assert await fetch_value(db, select(func.count()).select_from(usage_ledger)) == 0
    [event] = await db.run(recent_events, "acme")
    assert (event.event, event.fields["reason"]) == ("run.refused", "run_ceiling_too_small")


TIGHT_TOKENS = 1_000
"""Room for the first request's input bound (about 870 tokens, most of them the allowance
for tools) and roughly a hundred output tokens."""


@pytest.mark.parametrize("turn", [
    ToolUseTurn([ToolCall("counter__bump", {"by": 1})], output_tokens=TIGHT_TOKENS),
    TextTurn("word " * TIGHT_TOKENS),
], ids=["tool_call", "text"])
async def test_a_reply_cut_by_the_lowered_max_tokens_halts_resumably(
        db: Database, service: AgentService, emu: AnthropicEmulator,
        turn: ToolUseTurn | TextTurn) -> None:
    emu.script(turn)
    outcome = await start(service, db, plan(run_tokens=TIGHT_TOKENS))
    [sent] = emu.requests
    assert MIN_OUTPUT_TOKENS <= sent.body["max_tokens"] < TIGHT_TOKENS, "the budget lowered it"
    assert (outcome.status, outcome.answer, outcome.error) == ("halted", None, None)
    assert outcome.halt is not None and outcome.halt["ceiling"] == "tokens"


async def test_a_rate_limited_request_is_retried_by_the_sdk_and_charged_once(
        db: Database, service: AgentService, emu: AnthropicEmulator) -> None:
    emu.script(ErrorTurn.rate_limited(retry_after=0.05),
               TextTurn("Made it.", input_tokens=40, output_tokens=5))
    outcome = await start(service, db)

    assert (outcome.status, outcome.answer) == ("completed", "Made it.")
    assert [r.headers.get("x-stainless-retry-count") for r in emu.requests] == ["0", "1"]
    assert emu.requests[0].body == emu.requests[1].body, "the SDK resends the same request"
    [row] = await ledger_rows(db, outcome.run_id)
    assert (row.step_id, row.status, row.retried) == ("model:0", "settled", False)
    expected = PRICE.cost(input_tokens=40, output_tokens=5)
    assert row.cost_microcents == outcome.usage.cost_microcents == expected
    assert outcome.usage.retried_tokens == 0
    month = await month_row(db)
    assert (month.tokens, month.cost_microcents) == (45, expected)


async def test_overload_until_retries_run_out_fails_the_run_and_releases_the_reservation(
        db: Database, service: AgentService, emu: AnthropicEmulator,
        settings: Settings) -> None:
    attempts = settings.anthropic_max_retries + 1
    emu.script(*[ErrorTurn.overloaded() for _ in range(attempts)])
    outcome = await start(service, db)

    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("model request failed:")
    assert "529" in outcome.error and "overloaded" in outcome.error.lower()
    assert len(emu.requests) == attempts and emu.pending == 0
    rows = await ledger_rows(db, outcome.run_id)
    assert [r.status for r in rows] == ["settled"], "nothing may stay reserved"
    assert rows[0].retried and row_tokens(rows[0]) == 0 and rows[0].cost_microcents == 0
    month = await month_row(db)
    assert (month.tokens, month.cost_microcents, month.tool_calls) == (0, 0, 0)
    record = await run_record(db, outcome.run_id)
    assert (record.status, record.detail.get("error")) == ("failed", outcome.error)


WALLTIME_MS = 1000
"""Long enough that a busy machine reaches the model call inside it, short beside SLOW_S."""
SLOW_S = 30.0


async def test_the_walltime_deadline_cuts_a_slow_reply_and_a_resume_completes(
        db: Database, service: AgentService, emu: AnthropicEmulator) -> None:
    emu.script(TextTurn("Too late.", delay=SLOW_S))
    the_plan = plan(run_walltime_ms=WALLTIME_MS)
    halted = await start(service, db, the_plan)

    assert halted.status == "halted"
    assert halted.halt is not None
    assert (halted.halt["ceiling"], halted.halt["limit"]) == ("walltime_ms", WALLTIME_MS)
    assert halted.halt["used"] >= WALLTIME_MS
    assert emu.answered == 0, "the deadline did not cut the call: the slow reply came back"
    [cut] = await ledger_rows(db, halted.run_id)
    sent = emu.requests[0].body["max_tokens"]
    # The input was sent, so its estimate is charged; the output reservation is released.
    assert (cut.status, cut.retried, cut.output_tokens) == ("settled", True, 0)
    assert cut.input_tokens == cut.reserved_tokens - sent > 0
    assert cut.cost_microcents == row_cost(cut)

    emu.script(TextTurn("In time."))
    # The operator gives the plan room before resuming: the fresh allocation, not a
    # race with the clock, is what this part is about.
    await db.run(update_plan, the_plan.id, limits={"run_walltime_ms": 60_000})
    outcome = await resume(service, db, halted.run_id)

    assert (outcome.status, outcome.answer) == ("completed", "In time.")
    rows = await ledger_rows(db, outcome.run_id)
    assert [(r.step_id, r.status, r.retried) for r in rows] == [
        ("model:0", "settled", True), ("model:0#2", "settled", False)]
    assert outcome.usage.retried_tokens == cut.input_tokens
    assert outcome.usage.cost_microcents == row_cost(rows[1])
    assert (await run_record(db, outcome.run_id)).attempts == 2


async def every_row(db: Database) -> str:
    """Every row of every table, as text: wherever the key could have been stored."""
    chunks: list[str] = []

    def dump(conn: Connection) -> None:
        for name in inspect(conn).get_table_names():
            rows = conn.execute(select(text("*")).select_from(table(name))).all()
            chunks.append(f"{name}: {[tuple(r) for r in rows]!r}")

    await db.run(dump)
    return "\n".join(chunks)


def json_logger(sink: io.StringIO) -> Any:
    """Tenantry's JSON log pipeline (``core.logs.configure``) at DEBUG, writing to ``sink``.

    ``configure`` caches loggers on first use, so a test that reconfigures the global
    logger cannot rely on catching lines; a logger of its own, swapped into the
    modules that log during a run, sees every line the run writes.
    """
    return structlog.wrap_logger(
        structlog.PrintLogger(sink), processors=processors(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )


async def test_the_api_key_never_reaches_logs_or_stored_rows(
        db: Database, service: AgentService, emu: AnthropicEmulator, settings: Settings,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sink = io.StringIO()
    logger = json_logger(sink)
    monkeypatch.setattr(core.agent, "log", logger)
    monkeypatch.setattr(core.metered_model, "log", logger)
    caplog.set_level(logging.DEBUG)
    emu.script(
        ToolUseTurn([ToolCall("counter__bump", {"by": 1})]), TextTurn("Done."),
        *[ErrorTurn.overloaded(retry_after=0.01) for _ in range(settings.anthropic_max_retries
                                                                  + 1)],
        ErrorTurn(401, "invalid x-api-key"),
    )
    statuses = [(await start(service, db)).status]
    statuses += [(await start_again(service, db)).status for _ in range(2)]
    assert statuses == ["completed", "failed", "failed"]

    # The key was really used on every request (the emulator refuses any other) ...
    assert all(API_KEY in (r.headers.get("authorization", "") + r.headers.get("x-api-key", ""))
               for r in emu.requests)
    # ... and the capture really caught the run's own lines and the SDK's debug lines.
    logged = sink.getvalue()
    assert '"model call"' in logged and '"run failed"' in logged
    assert any(r.name.startswith("anthropic") for r in caplog.records)

    captured = capsys.readouterr()
    places = {
        "tenantry logs": logged,
        "library logs": caplog.text,
        "log records": "\n".join(repr(vars(r)) for r in caplog.records),
        "stdout": captured.out,
        "stderr": captured.err,
        "database": await every_row(db),
        "settings": f"{settings!r} {settings}",
    }
    for where, content in places.items():
        assert API_KEY not in content and KEY_TAIL not in content, f"API key found in {where}"


MONTH_TOKENS = 100_000


async def test_a_provider_counting_every_byte_cannot_push_the_month_past_its_allowance(
        db: Database, service: AgentService, emu: AnthropicEmulator) -> None:
    """25 concurrent runs of 3,000 CJK characters each against a 100,000-token month.

    The emulator counts a token for every byte of input, the most a byte-level
    tokenizer can: a reservation must hold that much, or settlements overrun the month.
    """
    emu.tokens_per_byte = True
    emu.script(*(TextTurn("了解しました。") for _ in range(25)))
    await tenant_on(db, "acme", plan(monthly_tokens=MONTH_TOKENS, run_tokens=MONTH_TOKENS))
    prompt = "請總結這份報告的要點" * 300

    async def one() -> RunOutcome:
        grant = await service.open(tenant_id="acme", principal_id="alice",
                                   extra_roles={"member"})
        return await service.start(grant, prompt)

    outcomes = await asyncio.gather(*(one() for _ in range(25)), return_exceptions=True)
    finished = [o for o in outcomes if isinstance(o, RunOutcome)]
    assert [o.status for o in finished].count("completed") >= 1
    assert all(isinstance(o, RunOutcome | RunRefused) for o in outcomes), outcomes
    month = await month_row(db)
    ledger = await fetch_value(db, select(func.sum(
        usage_ledger.c.input_tokens + usage_ledger.c.output_tokens
        + usage_ledger.c.cache_read_tokens + usage_ledger.c.cache_write_tokens)))
    assert month.tokens == ledger, "the month equals the sum of its ledger rows"
    assert month.tokens <= MONTH_TOKENS, f"overspent: {month.tokens} of {MONTH_TOKENS}"
    served = [r for r in emu.requests if r.body is not None]
    assert served and all(count_bytes(r.body) > 3 * 3000 for r in served)
