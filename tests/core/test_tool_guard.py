from __future__ import annotations

import dataclasses
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo

from core.agent import AgentService
from core.audit.events import TOOL_INVOKED, TOOL_REFUSED
from core.builtins import AuditRecent, BudgetStatus, RunStatusCapability
from core.db.engine import Database
from core.settings import Settings
from core.tools import CapabilityRegistry
from tests.support.auditing import audit_log
from tests.support.scripted import ScriptedModels
from tests.support.tenancy import plan, tenant_on

LICENSED = frozenset({"runs.status", "audit.recent"})


def intruder(foreign_run: str, own_run: str, seen: list[list[ModelMessage]]) -> Any:
    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(list(messages))
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        script = [
            ToolCallPart("budget__status", {}, tool_call_id="t1"),
            ToolCallPart("audit__recent", {"limit": 5}, tool_call_id="t2"),
            ToolCallPart("runs__status", {"run_id": foreign_run}, tool_call_id="t3"),
            ToolCallPart("runs__status", {"run_id": own_run}, tool_call_id="t4"),
        ]
        if turn < len(script):
            return ModelResponse(parts=[script[turn]])
        return ModelResponse(parts=[TextPart("done despite the refusals")])

    return reply


async def test_unlicensed_forbidden_and_foreign_resource_calls_are_refused_and_audited(
        db: Database, settings: Settings) -> None:
    await tenant_on(db, "acme", plan(capabilities=LICENSED))
    await tenant_on(db, "globex", plan("other", capabilities=LICENSED))
    log = audit_log(db)

    def service(function: Any) -> AgentService:
        registry = CapabilityRegistry([BudgetStatus(db), AuditRecent(log), RunStatusCapability(db)])
        return AgentService(db, settings, ScriptedModels(settings, function), log, registry)

    def hello(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("hi")])

    globex = service(hello)
    foreign = await globex.start(await globex.open(tenant_id="globex", principal_id="g"), "hi")
    acme = service(hello)
    own = await acme.start(await acme.open(tenant_id="acme", principal_id="alice",
                                           extra_roles={"member"}), "hi")

    seen: list[list[ModelMessage]] = []
    svc = service(intruder(foreign.run_id, own.run_id, seen))
    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
    assert grant.ctx.scope == {"runs.status"}
    outcome = await svc.start(grant, "try everything")

    assert outcome.status == "completed"
    assert outcome.answer == "done despite the refusals"
    assert sorted(outcome.refused_tools) == [
        ("audit.recent", "forbidden"), ("budget.status", "not_licensed"),
        ("runs.status", "forbidden")]
    events = await log.recent("acme", 50)
    refusals = [e for e in events if e.event == TOOL_REFUSED and e.run_id == outcome.run_id]
    assert sorted((e.fields["capability"], e.fields["reason"]) for e in refusals) == sorted(
        outcome.refused_tools)
    assert all(e.fields["principal"] == "alice" for e in refusals)
    invoked = [e for e in events if e.event == TOOL_INVOKED and e.run_id == outcome.run_id]
    assert [e.fields["capability"] for e in invoked] == ["runs.status"]
    assert not await log.recent("globex", 50, events={TOOL_REFUSED})
    seen_by_model = ModelMessagesTypeAdapter.dump_json(seen[-1]).decode()
    assert "globex" not in seen_by_model
    assert '"status":"completed"' in seen_by_model.replace(" ", "")


async def test_a_scope_widened_in_process_still_cannot_run_an_unlicensed_tool(
        db: Database, settings: Settings) -> None:
    """The guard checks the plan's licence on every call, not only the principal's roles."""
    await tenant_on(db, "acme", plan(capabilities=frozenset({"runs.status"})))

    def wants_budget(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if any(isinstance(m, ModelResponse) for m in messages):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart("budget__status", {}, tool_call_id="b1")])

    log = audit_log(db)
    svc = AgentService(db, settings, ScriptedModels(settings, wants_budget), log,
                       CapabilityRegistry([BudgetStatus(db), RunStatusCapability(db)]))
    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
    assert "budget.status" not in grant.ctx.scope
    widened = dataclasses.replace(
        grant, ctx=dataclasses.replace(grant.ctx, scope=grant.ctx.scope | {"budget.status"}))
    outcome = await svc.start(widened, "how much is left?")
    assert outcome.refused_tools == (("budget.status", "not_licensed"),)
    assert outcome.usage.tool_calls == 0
    [refusal] = await log.recent("acme", 10, events={TOOL_REFUSED})
    assert refusal.fields["reason"] == "not_licensed"
