"""A halted run queued again for a Resume: once, audited, and resumed as its next attempt."""

from __future__ import annotations

import pytest

from core.agent import AgentService, RunOutcome
from core.audit.events import RUN_RESUME_REQUESTED, RUN_STARTED
from core.audit.log import recent_events
from core.db.engine import Database
from core.errors import Conflict
from core.runs import get_run, unfinished_runs
from core.settings import Settings
from core.tenants import update_plan
from core.tools import CapabilityRegistry
from tests.support.auditing import audit_log
from tests.support.scripted import ScriptedModels, two_bumps
from tests.support.tenancy import CounterCapability, plan, tenant_on


async def halted_run(db: Database, settings: Settings,
                     counter: CounterCapability) -> tuple[AgentService, RunOutcome]:
    """Alice's run of two bumps, halted by a plan of one tool call per run."""
    await tenant_on(db, "acme", plan("tight", run_tool_calls=1))
    svc = AgentService(db, settings, ScriptedModels(settings, two_bumps), audit_log(db),
                       CapabilityRegistry([counter]))
    grant = await svc.open(tenant_id="acme", principal_id="alice", extra_roles={"member"})
    halted = await svc.start(grant, "bump it", model="sandbox")
    assert halted.status == "halted"
    return svc, halted


async def test_a_requested_resume_queues_the_run_and_resumes_it_as_its_second_attempt(
        db: Database, settings: Settings) -> None:
    counter = CounterCapability()
    svc, halted = await halted_run(db, settings, counter)
    await db.run(update_plan, "tight", limits={"run_tool_calls": 5})

    await svc.request_resume("acme", halted.run_id, by="bob")

    queued = await db.run(get_run, "acme", halted.run_id)
    assert (queued.status, queued.detail.get("halt"), queued.attempts) == ("queued", None, 1)
    assert [r.id for r in await db.run(unfinished_runs, "acme")] == [halted.run_id]
    [asked] = await db.run(recent_events, "acme", 10, [RUN_RESUME_REQUESTED])
    assert asked.run_id == halted.run_id
    assert asked.fields == {"principal": "bob", "ceiling": "tool_calls", "attempt": 2}

    outcome = await svc.resume(await svc.reopen("acme", halted.run_id))

    assert outcome.status == "completed" and outcome.answer == "bumped twice"
    again, first = await db.run(recent_events, "acme", 10, [RUN_STARTED])
    assert "resumed" not in first.fields and "prompt_digest" in first.fields
    assert (again.fields["resumed"], again.fields["attempt"]) == (True, 2)
    assert again.fields["principal"] == "alice", "the run acts as it was asked"
    assert (await db.run(get_run, "acme", halted.run_id)).attempts == 2
    assert counter.executions == {"acme": 11}, "bumped by 1, then by 10: each once"


async def test_only_a_halted_run_is_queued_again_and_only_once(
        db: Database, settings: Settings) -> None:
    svc, halted = await halted_run(db, settings, CounterCapability())

    await svc.request_resume("acme", halted.run_id, by="alice")
    with pytest.raises(Conflict, match="not halted"):
        await svc.request_resume("acme", halted.run_id, by="alice")
    await svc.resume(await svc.reopen("acme", halted.run_id))
    with pytest.raises(Conflict, match="not halted"):
        await svc.request_resume("acme", halted.run_id, by="alice")

    asked = await db.run(recent_events, "acme", 10, [RUN_RESUME_REQUESTED])
    assert len(asked) == 1


async def test_a_halted_run_held_by_a_process_is_not_queued_again(
        db: Database, settings: Settings) -> None:
    svc, halted = await halted_run(db, settings, CounterCapability())
    assert await svc.claim(await svc.reopen("acme", halted.run_id))

    with pytest.raises(Conflict, match="being resumed already"):
        await svc.request_resume("acme", halted.run_id, by="alice")
    assert (await db.run(get_run, "acme", halted.run_id)).status == "halted"
