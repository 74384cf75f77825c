"""``AgentService.call_tool``: a tool asked for directly is a one-step run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo
from sqlalchemy import update
from sqlalchemy.engine import Connection

from core.agent import AgentService
from core.audit.events import RUN_COMPLETED, RUN_HALTED, RUN_STARTED, TOOL_INVOKED, TOOL_REFUSED
from core.audit.log import recent_events
from core.builtins import BudgetStatus
from core.db.engine import Database
from core.db.schema import runs
from core.errors import Conflict
from core.models import ModelFactory
from core.run_records import finish_run
from core.runs import get_run, unfinished_runs
from core.settings import Settings
from core.tools import CapabilityRegistry
from core.toolset import record_tool_call
from tests.support.auditing import audit_log
from tests.support.scripted import Crash, CrashingDatabase, CrashPoints, ScriptedModels
from tests.support.tenancy import CounterCapability, plan, tenant_on


def service(db: Database, settings: Settings, counter: CounterCapability) -> AgentService:
    return AgentService(db, settings, ModelFactory(settings), audit_log(db),
                        CapabilityRegistry([counter, BudgetStatus(db)]))


class AskedModel:
    """A model that notes every request made of it: a resumed direct call makes none."""

    def __init__(self) -> None:
        self.requests: list[list[ModelMessage]] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(messages)
        return ModelResponse(parts=[TextPart("I cannot call tools by name")])


async def events_of(db: Database, tenant_id: str, run_id: str) -> list[str]:
    return [e.event for e in reversed(await db.run(recent_events, tenant_id, 50))
            if e.run_id == run_id]


async def test_a_direct_call_runs_the_tool_once_as_a_metered_audited_run(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    counter = CounterCapability()
    svc = service(db, settings, counter)
    grant = await svc.open(tenant_id="acme", principal_id="svc:ci", principal_kind="service",
                           extra_roles={"member"})
    outcome = await svc.call_tool(grant, "counter.bump", {"by": 3})
    assert (outcome.status, outcome.result) == ("completed", 3)
    assert counter.executions == {"acme": 3}
    assert outcome.usage.tool_calls == 1 and outcome.usage.cost_microcents == 1_000
    record = await db.run(get_run, "acme", outcome.run_id)
    assert (record.status, record.initiator, record.principal_id) == (
        "completed", "user", "svc:ci")
    assert await events_of(db, "acme", outcome.run_id) == [
        RUN_STARTED, TOOL_INVOKED, RUN_COMPLETED]


async def test_an_unlicensed_tool_is_refused_and_audited_without_running(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(capabilities=frozenset({"budget.status"})))
    counter = CounterCapability()
    svc = service(db, settings, counter)
    grant = await svc.open(tenant_id="acme", principal_id="svc:ci", extra_roles={"member"})
    outcome = await svc.call_tool(grant, "counter.bump", {"by": 3})
    assert outcome.status == "refused" and outcome.refused_tools == (
        ("counter.bump", "not_licensed"),)
    assert counter.executions == {}
    assert await events_of(db, "acme", outcome.run_id) == [
        RUN_STARTED, TOOL_REFUSED, RUN_COMPLETED]


async def test_a_call_beyond_the_run_cost_ceiling_halts_naming_it(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(run_cost_microcents=500))
    counter = CounterCapability()
    svc = service(db, settings, counter)
    grant = await svc.open(tenant_id="acme", principal_id="svc:ci", extra_roles={"member"})
    outcome = await svc.call_tool(grant, "counter.bump", {"by": 1})
    assert outcome.status == "halted" and outcome.halt is not None
    assert outcome.halt["ceiling"] == "cost_microcents" and outcome.halt["limit"] == 500
    assert counter.executions == {}
    assert await events_of(db, "acme", outcome.run_id) == [RUN_STARTED, RUN_HALTED]


async def test_arguments_that_do_not_fit_fail_the_call_with_a_clear_error(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    counter = CounterCapability()
    svc = service(db, settings, counter)
    grant = await svc.open(tenant_id="acme", principal_id="svc:ci", extra_roles={"member"})
    outcome = await svc.call_tool(grant, "counter.bump", {"by": "many"})
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.startswith("arguments of counter.bump do not fit: by:")
    assert counter.executions == {}


def lease_ended(conn: Connection, run_id: str) -> None:
    """Time passing beyond the dead process's lease on the run."""
    conn.execute(update(runs).where(runs.c.id == run_id).values(
        lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))


async def crashed_direct_call(db: Database, settings: Settings, counter: CounterCapability,
                              point: str) -> str:
    """A direct call whose process died at ``point``; the run's id."""
    crashing = CrashingDatabase(db.url, CrashPoints(at=point),
                                {record_tool_call: "effect", finish_run: "finish"})
    svc = service(crashing, settings, counter)
    try:
        grant = await svc.open(tenant_id="acme", principal_id="svc:ci",
                               principal_kind="service", extra_roles={"member"})
        with pytest.raises((Crash, BaseExceptionGroup)):
            await svc.call_tool(grant, "counter.bump", {"by": 3})
    finally:
        await crashing.dispose()
    assert counter.executions == {"acme": 3}
    return grant.ctx.run_id


@pytest.mark.parametrize("point", ["effect1:before", "effect1:after", "finish1:before"])
async def test_a_direct_call_whose_process_died_is_ended_on_resume_not_run_again(
        db: Database, settings: Settings, point: str) -> None:
    """Its caller has gone and its tool may have acted: the restarted process ends it."""
    await tenant_on(db, "acme", plan())
    counter = CounterCapability()
    run_id = await crashed_direct_call(db, settings, counter, point)
    await db.run(lease_ended, run_id)
    assert [r.id for r in await db.run(unfinished_runs)] == [run_id]

    model = AskedModel()
    restarted = AgentService(db, settings, ScriptedModels(settings, model), audit_log(db),
                             CapabilityRegistry([counter]))
    outcome = await restarted.resume(await restarted.reopen("acme", run_id))

    assert outcome.status == "failed" and outcome.error is not None
    assert "stopped before it answered" in outcome.error
    assert "should call again" in outcome.error and "audit log" in outcome.error
    assert model.requests == [], "a model was asked to answer the call's prompt"
    assert counter.executions == {"acme": 3}, "the tool's effect was applied twice"
    record = await db.run(get_run, "acme", run_id)
    assert (record.status, record.detail["direct"]) == ("failed", "counter.bump")
    assert await db.run(unfinished_runs) == []
    with pytest.raises(Conflict):
        await restarted.resume(await restarted.reopen("acme", run_id))
    recorded = await events_of(db, "acme", run_id)
    assert recorded[-1] == RUN_COMPLETED
    [ended] = [e for e in await db.run(recent_events, "acme", 50, [RUN_COMPLETED])
               if e.run_id == run_id]
    assert ended.fields["outcome"] == "failed"
    assert recorded.count(TOOL_INVOKED) == (0 if point == "effect1:before" else 1)


async def test_a_direct_call_that_halted_is_not_resumed(
        db: Database, settings: Settings) -> None:
    """It answered its caller with the halt; there is no model's work to go on with."""
    await tenant_on(db, "acme", plan(run_cost_microcents=500))
    counter = CounterCapability()
    model = AskedModel()
    svc = AgentService(db, settings, ScriptedModels(settings, model), audit_log(db),
                       CapabilityRegistry([counter]))
    grant = await svc.open(tenant_id="acme", principal_id="svc:ci", extra_roles={"member"})
    halted = await svc.call_tool(grant, "counter.bump", {"by": 1})
    assert halted.status == "halted"
    with pytest.raises(Conflict, match=r"direct call of counter\.bump"):
        await svc.resume(await svc.reopen("acme", halted.run_id))
    with pytest.raises(Conflict, match=r"direct call of counter\.bump"):
        await svc.request_resume("acme", halted.run_id, by="svc:ci")
    assert model.requests == [] and counter.executions == {}
    assert (await db.run(get_run, "acme", halted.run_id)).status == "halted"


async def test_a_completed_direct_call_keeps_its_capability_in_its_record(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan())
    svc = service(db, settings, CounterCapability())
    grant = await svc.open(tenant_id="acme", principal_id="svc:ci", extra_roles={"member"})
    outcome = await svc.call_tool(grant, "counter.bump", {"by": 2})
    record = await db.run(get_run, "acme", outcome.run_id)
    assert record.detail == {"direct": "counter.bump"}
