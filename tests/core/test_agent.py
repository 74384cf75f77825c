from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo
from sqlalchemy import delete, func, select, update

from core.agent import AgentService, RunOutcome
from core.audit.events import RUN_COMPLETED, RUN_HALTED, RUN_STARTED, TOOL_UNCONFIRMED
from core.audit.log import recent_events
from core.builder import build_context
from core.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from core.context import TenantContext
from core.db.engine import Database
from core.db.schema import checkpoint_segments, checkpoints, runs, tool_effects, usage_ledger
from core.errors import CheckpointError, ConfigurationError, Conflict, NotFound, RunRefused
from core.memory import append_turn
from core.models import ModelFactory
from core.run_records import finish_run
from core.runs import Lease, claim_run, create_run, get_run, unfinished_runs
from core.settings import Settings
from core.tenants import set_status
from core.tools import CapabilityRegistry, ToolBinding, idempotency_key
from core.toolset import record_tool_call
from tests.support.auditing import audit_log
from tests.support.databases import fetch_all, fetch_value
from tests.support.scripted import (
    Crash,
    CrashingDatabase,
    CrashingModel,
    CrashPoints,
    ScriptedModels,
    two_bumps,
)
from tests.support.tenancy import CounterCapability, plan, tenant_on

ROOT = Path(__file__).resolve().parents[2]

def service(db: Database, settings: Settings, counter: CounterCapability,
            points: CrashPoints | None = None) -> AgentService:
    """The agent service; with ``points``, on a database that can crash around checkpoints."""
    if points is not None:
        db = CrashingDatabase(db.url, points, {
            save_checkpoint: "checkpoint", record_tool_call: "effect", finish_run: "finish",
        })
    crash = points or CrashPoints()
    models = ScriptedModels(settings, two_bumps, wrap=lambda m: CrashingModel(m, crash))
    return AgentService(db, settings, models, audit_log(db), CapabilityRegistry([counter]))


async def start(svc: AgentService, db: Database, tenant: str = "acme") -> RunOutcome:
    grant = await svc.open(tenant_id=tenant, principal_id="alice", extra_roles={"member"})
    return await svc.start(grant, "bump it", model="sandbox")


async def ledger_rows(db: Database, run_id: str) -> list[Any]:
    return await db.run(lambda conn: list(conn.execute(
        select(usage_ledger).where(usage_ledger.c.run_id == run_id)
        .order_by(usage_ledger.c.step_id)).all()))


async def test_a_run_calls_its_tools_and_completes_with_metered_usage(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    counter = CounterCapability()
    outcome = await start(service(db, settings, counter), db)
    assert outcome.status == "completed"
    assert outcome.answer == "bumped twice"
    assert counter.executions == {"acme": 11}
    assert outcome.usage.tool_calls == 2
    rows = await ledger_rows(db, outcome.run_id)
    assert [r.step_id for r in rows] == ["model:0", "model:1", "model:2", "tool:c1", "tool:c2"]
    assert all(r.status == "settled" and not r.retried for r in rows)
    assert outcome.usage.cost_microcents == sum(r.cost_microcents for r in rows)
    record = await db.run(get_run, "acme", outcome.run_id)
    assert record.status == "completed" and record.cost_microcents == outcome.usage.cost_microcents


CRASH_POINTS = [
    "model1:before", "model1:answered", "checkpoint1:before", "checkpoint1:after",
    "effect1:after",
    "model2:before", "model2:answered", "checkpoint2:before", "checkpoint2:after",
    "effect2:after",
    "model3:before", "model3:answered", "finish1:before",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_a_crash_between_any_two_steps_resumes_without_repeating_work(
        db: Database, settings: Settings, point: str) -> None:
    await tenant_on(db, "acme", plan())
    clean_counter = CounterCapability()
    await tenant_on(db, "clean", plan())
    clean = await start(service(db, settings, clean_counter), db, tenant="clean")

    counter = CounterCapability()
    points = CrashPoints(at=point)
    svc = service(db, settings, counter, points)
    try:
        grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
        with pytest.raises((Crash, BaseExceptionGroup)):
            await svc.start(grant, "bump it", model="sandbox")
        assert point in points.seen

        again = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"},
                               run_id=grant.ctx.run_id)
        outcome = await svc.resume(again)
    finally:
        await svc.db.dispose()

    assert outcome.status == "completed"
    assert counter.executions == {"acme": 11}, "a recorded tool effect ran twice"
    rows = await ledger_rows(db, outcome.run_id)
    done = [r for r in rows if not r.retried]
    assert sorted(r.step_id.split("#")[0] for r in done) == [
        "model:0", "model:1", "model:2", "tool:c1", "tool:c2"]
    assert outcome.usage.tokens == clean.usage.tokens
    assert outcome.usage.cost_microcents == clean.usage.cost_microcents
    assert outcome.usage.tool_calls == 2
    retried = [r for r in rows if r.retried]
    if point.startswith("model"):
        # Between a model call's reservation and the commit of its answer the call is in
        # flight as far as the database knows: nobody knows what it used, so its
        # reservation is charged in full, shown as retried work, and the call made again.
        assert len(retried) == 1 and retried[0].step_id.startswith("model:")
        assert outcome.usage.retried_tokens == retried[0].reserved_tokens > 0
    else:
        # The answer was committed as it arrived, a tool's result as it returned: the
        # resume replays them, unpaid and not repeated, the final answer included.
        assert retried == []
        provider_calls = [p for p in points.seen if p.startswith("model") and p.endswith("before")]
        assert len(provider_calls) == 3, "a paid response was asked for again"
        assert outcome.usage.retried_tokens == 0


async def test_a_token_ceiling_halts_the_run_and_resume_continues_with_a_fresh_budget(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(run_tokens=1350))
    counter = CounterCapability()
    svc = service(db, settings, counter)
    halted = await start(svc, db)
    assert halted.status == "halted"
    assert halted.halt is not None and halted.halt["ceiling"] == "tokens"
    assert halted.halt["limit"] == 1350 and halted.halt["used"] > 0
    assert "tokens" in halted.halt["message"] and "1350" in halted.halt["message"]

    outcome = halted
    for _ in range(5):
        if outcome.status != "halted":
            break
        grant = await svc.open(tenant_id="acme", principal_id="alice",
                               extra_roles={"member"}, run_id=halted.run_id)
        outcome = await svc.resume(grant)
    assert outcome.status == "completed"
    assert counter.executions == {"acme": 11}


async def test_the_tool_call_ceiling_halts_before_the_call(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(run_tool_calls=1))
    counter = CounterCapability()
    outcome = await start(service(db, settings, counter), db)
    assert outcome.status == "halted"
    assert outcome.halt == {"ceiling": "tool_calls", "limit": 1, "used": 1,
                            "message": "budget ceiling tool_calls reached: limit 1, used 1"}
    assert counter.executions == {"acme": 1}


async def test_a_checkpoint_cannot_be_resumed_under_another_tenant(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(run_tokens=1350))
    await tenant_on(db, "evil", plan())
    svc = service(db, settings, CounterCapability())
    halted = await start(svc, db)
    assert halted.status == "halted"
    foreign = await svc.open(tenant_id="evil", principal_id="mallory", run_id=halted.run_id)
    with pytest.raises(NotFound):
        await svc.resume(foreign)
    with pytest.raises(CheckpointError, match="another tenant"):
        await db.run(load_checkpoint, foreign.ctx, halted.run_id)


async def test_a_corrupted_checkpoint_is_a_clear_error_and_changes_nothing(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(run_tokens=1350))
    svc = service(db, settings, CounterCapability())
    halted = await start(svc, db)
    await db.run(lambda conn: conn.execute(
        update(checkpoints).where(checkpoints.c.run_id == halted.run_id)
        .values(messages='[{"kind": "garbage"')))
    grant = await svc.open(tenant_id="acme", principal_id="alice", run_id=halted.run_id)
    before = await ledger_rows(db, halted.run_id)
    with pytest.raises(CheckpointError, match="corrupt"):
        await svc.resume(grant)
    assert await ledger_rows(db, halted.run_id) == before


async def test_refusals_before_a_run(db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    with pytest.raises(NotFound):
        await build_context(db, tenant_id="nobody", principal_id="alice")
    await db.run(set_status, "acme", "suspended")
    with pytest.raises(RunRefused) as refused:
        await build_context(db, tenant_id="acme", principal_id="alice")
    assert refused.value.reason == "tenant_suspended"
    await db.run(set_status, "acme", "active")
    await tenant_on(db, "broke", plan("tiny", monthly_tokens=0))
    with pytest.raises(RunRefused) as spent:
        await build_context(db, tenant_id="broke", principal_id="alice")
    assert spent.value.reason == "allowance_exhausted"


async def test_unknown_models_and_missing_credentials_are_configuration_errors(
        settings: Settings) -> None:
    models = ModelFactory(settings)
    with pytest.raises(ConfigurationError, match="unknown model id"):
        models.check("openai:gpt-nonexistent")
    with pytest.raises(ConfigurationError, match="--model sandbox"):
        models.check("anthropic:claude-sonnet-4-5")
    assert models.check("sandbox") == "sandbox"


async def test_a_queued_run_starts_on_resume_with_its_conversation_and_as_a_first_attempt(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    seen: list[list[ModelMessage]] = []

    def remembering(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(list(messages))
        return ModelResponse(parts=[TextPart("hello again")])

    log = audit_log(db)
    svc = AgentService(db, settings, ScriptedModels(settings, remembering), log,
                       CapabilityRegistry([CounterCapability()]))
    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
    await db.run(append_turn, grant.ctx, "thread-1", "user", "my name is Ada")
    await db.run(append_turn, grant.ctx, "thread-1", "assistant", "noted, Ada")
    await db.run(create_run, grant.ctx, prompt="what is my name?", model="sandbox",
                 status="queued", conversation_id="thread-1")

    again = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"},
                           run_id=grant.ctx.run_id)
    outcome = await svc.resume(again)

    assert outcome.status == "completed" and outcome.answer == "hello again"
    texts = [getattr(part, "content", None) for m in seen[0] for part in m.parts]
    assert texts[:3] == ["my name is Ada", "noted, Ada", "what is my name?"]
    record = await db.run(get_run, "acme", outcome.run_id)
    assert record.attempts == 1
    [started] = await db.run(recent_events, "acme", events=[RUN_STARTED])
    assert "resumed" not in started.fields and "prompt_digest" in started.fields


async def test_each_tool_call_is_announced_and_a_failing_listener_does_not_stop_the_run(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    counter = CounterCapability()
    svc = service(db, settings, counter)
    heard: list[str] = []

    async def broken_status_line(capability: str) -> None:
        heard.append(capability)
        raise RuntimeError("the status line is down")

    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
    outcome = await svc.start(grant, "bump it", model="sandbox", on_tool=broken_status_line)

    assert outcome.status == "completed" and outcome.answer == "bumped twice"
    assert heard == ["counter.bump", "counter.bump"]
    assert counter.executions == {"acme": 11}


async def completed_with_checkpoint(
        db: Database, settings: Settings) -> tuple[AgentService, RunOutcome, Checkpoint]:
    """A completed run of acme's, and its last checkpoint as loaded back."""
    await tenant_on(db, "acme", plan())
    svc = service(db, settings, CounterCapability())
    outcome = await start(svc, db)
    grant = await svc.open(tenant_id="acme", principal_id="alice", run_id=outcome.run_id)
    checkpoint = await db.run(load_checkpoint, grant.ctx, outcome.run_id)
    assert checkpoint is not None and checkpoint.segments >= 1
    return svc, outcome, checkpoint


async def test_a_checkpoint_stores_each_settled_message_once_under_its_tenant(
        db: Database, settings: Settings) -> None:
    _, outcome, checkpoint = await completed_with_checkpoint(db, settings)
    segments = await db.run(lambda conn: conn.execute(
        select(checkpoint_segments).where(checkpoint_segments.c.run_id == outcome.run_id)
        .order_by(checkpoint_segments.c.seq)).all())
    tail = await db.run(lambda conn: conn.execute(
        select(checkpoints.c.messages).where(checkpoints.c.run_id == outcome.run_id)
    ).scalar_one())
    assert [s.seq for s in segments] == list(range(checkpoint.segments))
    assert {s.tenant_id for s in segments} == {"acme"}
    stored = [m for s in segments for m in json.loads(s.messages)]
    history = json.loads(checkpoint.messages)
    assert len(stored) == checkpoint.settled == len(history) - len(json.loads(tail))
    assert stored + json.loads(tail) == history


@pytest.mark.parametrize("damage", ["tampered", "missing"])
async def test_a_damaged_checkpoint_segment_is_a_clear_error_and_changes_nothing(
        db: Database, settings: Settings, damage: str) -> None:
    await tenant_on(db, "acme", plan(run_tokens=1350))
    svc = service(db, settings, CounterCapability())
    halted = await start(svc, db)
    assert halted.status == "halted"
    first = (checkpoint_segments.c.run_id == halted.run_id) & (checkpoint_segments.c.seq == 0)
    statement = (update(checkpoint_segments).where(first)
                 .values(messages='[{"kind": "request", "parts": []}]')
                 if damage == "tampered" else delete(checkpoint_segments).where(first))
    changed = await db.run(lambda conn: conn.execute(statement).rowcount)
    assert changed == 1
    grant = await svc.open(tenant_id="acme", principal_id="alice", run_id=halted.run_id)
    before = await ledger_rows(db, halted.run_id)
    expected = "digest mismatch" if damage == "tampered" else "segment missing"
    with pytest.raises(CheckpointError, match=expected):
        await svc.resume(grant)
    assert await ledger_rows(db, halted.run_id) == before


def bump_if_offered(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A model that uses the counter when it is offered, and answers without it otherwise."""
    if any(isinstance(m, ModelResponse) for m in messages) or not info.function_tools:
        return ModelResponse(parts=[TextPart("answered without tools")])
    return ModelResponse(parts=[ToolCallPart("counter__bump", {"by": 1}, tool_call_id="b1")])


async def test_a_month_without_tool_calls_left_answers_without_tools_instead_of_halting(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(monthly_tool_calls=2))
    counter = CounterCapability()
    assert (await start(service(db, settings, counter), db)).usage.tool_calls == 2
    svc = AgentService(db, settings, ScriptedModels(settings, bump_if_offered), audit_log(db),
                       CapabilityRegistry([counter]))
    outcomes = [await start(svc, db) for _ in range(5)]
    assert [o.status for o in outcomes] == ["completed"] * 5
    assert {o.answer for o in outcomes} == {"answered without tools"}
    assert counter.executions == {"acme": 11}, "no tool ran once the month's calls were spent"
    assert all(o.usage.tokens > 0 and o.usage.retried_tokens == 0 for o in outcomes)


async def test_a_month_that_cannot_pay_one_model_call_refuses_the_run(
        db: Database, settings: Settings) -> None:
    """900 tokens left: less than the bound of the first request with its tools (~930)."""
    await tenant_on(db, "acme", plan(monthly_tokens=900))
    with pytest.raises(RunRefused) as refused:
        await start(service(db, settings, CounterCapability()), db)
    assert refused.value.reason == "allowance_exhausted"
    assert "what is left of the month" in str(refused.value)
    assert await fetch_value(db, select(func.count()).select_from(usage_ledger)) == 0
    [event] = await db.run(recent_events, "acme")
    assert (event.event, event.fields["reason"]) == ("run.refused", "allowance_exhausted")


@dataclass
class OnceOnlyCounter(CounterCapability):
    """A counter whose calls must never repeat: it declares itself non-retryable."""

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        return dataclasses.replace(super().resolve(ctx), retryable=False)


async def crashed_after_first_tool_ran(
        db: Database, settings: Settings, counter: CounterCapability,
) -> tuple[AgentService, str]:
    """A run whose process died after its first tool ran, before the result was recorded."""
    await tenant_on(db, "acme", plan())
    svc = service(db, settings, counter, CrashPoints(at="effect1:before"))
    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
    with pytest.raises((Crash, BaseExceptionGroup)):
        await svc.start(grant, "bump it", model="sandbox")
    assert counter.executions == {"acme": 1}
    return svc, grant.ctx.run_id


async def test_the_one_window_replay_cannot_cover_repeats_a_retryable_tool(
        db: Database, settings: Settings) -> None:
    """Between a tool's outside effect and the commit of its result, a crash repeats it."""
    counter = CounterCapability()
    svc, run_id = await crashed_after_first_tool_ran(db, settings, counter)
    try:
        again = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"},
                               run_id=run_id)
        assert (await svc.resume(again)).status == "completed"
    finally:
        await svc.db.dispose()
    assert counter.executions == {"acme": 12}, "the unrecorded call was made again"


async def test_a_non_retryable_tool_that_may_have_run_halts_for_a_person(
        db: Database, settings: Settings) -> None:
    counter = OnceOnlyCounter()
    svc, run_id = await crashed_after_first_tool_ran(db, settings, counter)
    try:
        def reopen() -> Any:
            return svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"},
                            run_id=run_id)

        halted = await svc.resume(await reopen())
        assert halted.status == "halted" and halted.halt is not None
        assert (halted.halt["ceiling"], halted.halt["capability"]) == (
            "unconfirmed_tool", "counter.bump")
        assert counter.executions == {"acme": 1}, "the call that may have run was repeated"
        [event] = await db.run(recent_events, "acme", events=[TOOL_UNCONFIRMED])
        assert event.fields["capability"] == "counter.bump"

        # A person checked: the resumed run goes on without making that call again.
        outcome = await svc.resume(await reopen())
    finally:
        await svc.db.dispose()
    assert outcome.status == "completed"
    assert counter.executions == {"acme": 11}


async def test_a_tool_gets_a_key_that_is_the_same_for_every_attempt_at_its_call(
        db: Database, settings: Settings) -> None:
    keys: list[str] = []

    @dataclass
    class KeyedCounter(CounterCapability):
        async def bump(self, ctx: RunContext[TenantContext], by: int) -> int:
            keys.append(idempotency_key(ctx))
            return await super().bump(ctx, by)

    svc, run_id = await crashed_after_first_tool_ran(db, settings, KeyedCounter())
    try:
        await svc.resume(await svc.open(tenant_id="acme", principal_id="alice",
                                        extra_roles={"member"}, run_id=run_id))
    finally:
        await svc.db.dispose()
    assert keys == [f"{run_id}:tool:c1", f"{run_id}:tool:c1", f"{run_id}:tool:c2"]


async def test_a_halted_run_records_the_same_totals_as_a_completed_one(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(run_tool_calls=1))
    halted = await start(service(db, settings, CounterCapability()), db)
    assert halted.status == "halted"
    [event] = await db.run(recent_events, "acme", events=[RUN_HALTED])
    totals = {"tokens_in": halted.usage.input_tokens, "tokens_out": halted.usage.output_tokens,
              "tool_calls": halted.usage.tool_calls,
              "cost_microcents": halted.usage.cost_microcents}
    assert {key: event.fields[key] for key in totals} == totals
    assert halted.usage.tool_calls == 1 and halted.usage.cost_microcents > 0
    assert event.fields["walltime_ms"] >= 0 and event.fields["outcome"] == "halted"
    assert (event.fields["ceiling"], event.fields["limit"]) == ("tool_calls", 1)


async def test_a_failed_run_records_the_same_totals_too(db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())

    def bump_then_break(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if any(isinstance(m, ModelResponse) for m in messages):
            raise RuntimeError("the provider went away")
        return two_bumps(messages, info)

    svc = AgentService(db, settings, ScriptedModels(settings, bump_then_break), audit_log(db),
                       CapabilityRegistry([CounterCapability()]))
    failed = await start(svc, db)

    assert failed.status == "failed"
    [event] = await db.run(recent_events, "acme", events=[RUN_COMPLETED])
    assert event.fields["outcome"] == "failed"
    fields = event.fields
    assert (fields["tool_calls"], fields["tokens_in"], fields["cost_microcents"]) == (
        1, failed.usage.input_tokens, failed.usage.cost_microcents)
    assert failed.usage.cost_microcents > 0 and event.fields["walltime_ms"] >= 0


async def test_a_resumed_run_keeps_its_vouched_roles_and_correlation_id(
        db: Database, settings: Settings) -> None:
    """Roles vouched for one run (a Slack admin's flags, ``run --role``) outlive a crash."""
    await tenant_on(db, "acme", plan())
    counter = CounterCapability()
    svc = service(db, settings, counter, CrashPoints(at="model2:before"))
    try:
        grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"},
                               correlation_id="slack:Ev123")
        with pytest.raises((Crash, BaseExceptionGroup)):
            await svc.start(grant, "bump it", model="sandbox")
        again = await svc.reopen("acme", grant.ctx.run_id)
        assert again.extra_roles == {"member"}
        assert again.ctx.audit.correlation_id == "slack:Ev123"
        assert "counter.bump" in again.ctx.scope, "alice holds no stored role: only the vouched one"
        outcome = await svc.resume(again)
    finally:
        await svc.db.dispose()
    assert outcome.status == "completed" and outcome.refused_tools == ()
    assert counter.executions == {"acme": 11}
    started = await db.run(recent_events, "acme", events=[RUN_STARTED])
    assert {e.fields["correlation_id"] for e in started} == {"slack:Ev123"}


async def test_two_services_resuming_the_same_runs_execute_each_once(
        db: Database, settings: Settings) -> None:
    """Two processes (two engines, two services) restarting at once share the work."""
    await tenant_on(db, "acme", plan())
    counter = CounterCapability()
    first = service(db, settings, counter)
    queued = []
    for _ in range(6):
        grant = await first.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
        await db.run(create_run, grant.ctx, prompt="bump it", model="sandbox", status="queued",
                     granted_roles=["member"])
        queued.append(grant.ctx.run_id)
    other_db = Database(db.url)
    second = AgentService(other_db, settings, ScriptedModels(settings, two_bumps),
                          audit_log(other_db), CapabilityRegistry([counter]))

    async def resume_all(svc: AgentService) -> list[str]:
        done = []
        for record in await svc.db.run(unfinished_runs):
            try:
                outcome = await svc.resume(await svc.reopen(record.tenant_id, record.id))
            except Conflict:
                continue
            done.append(outcome.run_id)
        return done

    try:
        mine, theirs = await asyncio.gather(resume_all(first), resume_all(second))
    finally:
        await other_db.dispose()
    assert sorted(mine + theirs) == sorted(queued), "every run executed, and once"
    assert counter.executions == {"acme": 11 * 6}
    for run_id in queued:
        record = await db.run(get_run, "acme", run_id)
        assert (record.status, record.attempts) == ("completed", 1)


async def test_a_run_held_by_another_process_is_not_resumed_until_its_lease_ends(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(run_walltime_ms=60_000))
    svc = service(db, settings, CounterCapability())
    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
    await db.run(create_run, grant.ctx, prompt="bump it", model="sandbox", status="queued")
    elsewhere = Lease("other-host:1:abcd", datetime.now(UTC) + timedelta(minutes=5))
    assert await db.run(claim_run, grant.ctx, elsewhere)
    assert not await svc.claim(grant), "held by another process"
    assert await db.run(unfinished_runs) == []
    with pytest.raises(Conflict, match="executed elsewhere"):
        await svc.resume(grant)
    expired = Lease("other-host:1:abcd", datetime.now(UTC) - timedelta(seconds=1))
    await db.run(lambda conn: update_lease(conn, grant.ctx.run_id, expired))
    assert [r.id for r in await db.run(unfinished_runs)] == [grant.ctx.run_id]
    assert (await svc.resume(grant)).status == "completed"


def update_lease(conn: Any, run_id: str, lease: Lease) -> None:
    conn.execute(update(runs).where(runs.c.id == run_id).values(
        lease_owner=lease.owner, lease_expires_at=lease.expires_at))


async def test_two_processes_restarting_at_once_execute_each_run_once(
        db: Database, settings: Settings, tmp_path: Path) -> None:
    await tenant_on(db, "acme", plan())
    svc = service(db, settings, CounterCapability())
    queued = set()
    for _ in range(8):
        grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
        await db.run(create_run, grant.ctx, prompt="bump it", model="sandbox", status="queued",
                     granted_roles=["member"])
        queued.add(grant.ctx.run_id)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.restart", db.url, str(tmp_path), cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    waiting = [asyncio.create_task(p.communicate()) for p in procs]

    def ready() -> int:
        return len(list(tmp_path.glob("ready-*")))

    for _ in range(3000):  # both have read the unfinished runs: resume at once
        if await asyncio.to_thread(ready) == 2 or any(t.done() for t in waiting):
            break
        await asyncio.sleep(0.01)
    await asyncio.to_thread((tmp_path / "go").touch)
    results = [await t for t in waiting]
    assert all(p.returncode == 0 for p in procs), [r[1][-2000:] for r in results]
    executed = [set(out.decode().split()) for out, _err in results]
    assert executed[0] | executed[1] == queued
    assert not executed[0] & executed[1], "a run was executed by both processes"
    effects = await fetch_all(db, select(tool_effects.c.run_id))
    assert Counter(r.run_id for r in effects) == dict.fromkeys(queued, 2), (
        "each run made its two tool calls, once")
