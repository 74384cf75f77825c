"""``AgentService.call_tool``: a tool asked for directly is a one-step run."""

from __future__ import annotations

from core.agent import AgentService
from core.audit.events import RUN_COMPLETED, RUN_HALTED, RUN_STARTED, TOOL_INVOKED, TOOL_REFUSED
from core.audit.log import recent_events
from core.builtins import BudgetStatus
from core.db.engine import Database
from core.models import ModelFactory
from core.runs import get_run
from core.settings import Settings
from core.tools import CapabilityRegistry
from tests.support.auditing import audit_log
from tests.support.tenancy import CounterCapability, plan, tenant_on


def service(db: Database, settings: Settings, counter: CounterCapability) -> AgentService:
    return AgentService(db, settings, ModelFactory(settings), audit_log(db),
                        CapabilityRegistry([counter, BudgetStatus(db)]))


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
