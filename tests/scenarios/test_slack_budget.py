"""Budget halts with a Resume button, who may press it, and tools a plan does not license."""

from __future__ import annotations

import asyncio

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo

from bots.slack import render
from core.audit import events
from core.tenants import update_plan
from standins.slack.api import SlackMessage, SlackUser
from tests.scenarios.harness import Scenario, Workspace, audit_events, runs_of, thread
from tests.support.scripted import ScriptedModels
from tests.support.tenancy import plan

ADA = SlackUser("U1ADA")
BOB = SlackUser("U1BOB")
OWNER = SlackUser("U1OWN", is_admin=True, is_owner=True)


async def halted(scenario: Scenario) -> tuple[Workspace, str, SlackMessage]:
    """Ada's request for two tools, halted by a plan that allows one tool call per run."""
    await scenario.tenant("acme", plan("tight", run_tool_calls=1, capabilities=frozenset(
        {"budget.status", "knowledge.search"})))
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA, BOB, OWNER])
    mention = await scenario.mention(t1, ADA.id, "check budget.status and knowledge.search?")
    await scenario.idle()
    [answer] = thread(scenario.slack, t1.channel, mention)
    return t1, mention, answer


def resume_value(message: SlackMessage) -> str:
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    [button] = actions["elements"]
    assert button["action_id"] == render.RESUME_ACTION
    return str(button["value"])


async def test_a_budget_halt_shows_its_figures_and_a_resume_button(scenario: Scenario) -> None:
    _t1, _mention, answer = await halted(scenario)

    [run] = await runs_of(scenario, "acme")
    assert run.status == "halted"
    assert "per-request tool-call limit (limit 1, used 1)" in answer.text
    assert resume_value(answer) == run.id
    [context] = [b for b in answer.blocks if b["type"] == "context"]
    assert "ceiling `tool_calls`" in context["elements"][0]["text"]
    [halt] = await audit_events(scenario, "acme", events.RUN_HALTED)
    assert (halt.fields["ceiling"], halt.fields["limit"], halt.fields["used"]) == (
        "tool_calls", 1, 1)
    assert halt.fields["tool_calls"] == 1 and halt.fields["cost_microcents"] > 0


async def test_resume_pressed_by_another_member_is_refused(scenario: Scenario) -> None:
    t1, _mention, answer = await halted(scenario)
    await scenario.db.run(update_plan, "tight", limits={"run_tool_calls": 5})

    sent = await scenario.press(t1, BOB.id, render.RESUME_ACTION, resume_value(answer),
                                channel=t1.channel, message_ts=answer.ts)
    await scenario.idle()

    assert sent.status == 200
    [note] = scenario.slack.ephemeral_messages(t1.channel)
    assert (note.text, note.ephemeral_to) == (render.resume_denied(), BOB.id)
    [run] = await runs_of(scenario, "acme")
    assert (run.status, run.attempts) == ("halted", 1)


async def test_resume_by_the_asker_resumes_once_when_pressed_twice(scenario: Scenario) -> None:
    t1, mention, answer = await halted(scenario)
    await scenario.db.run(update_plan, "tight", limits={"run_tool_calls": 5})
    value = resume_value(answer)

    presses = await asyncio.gather(*(
        scenario.press(t1, ADA.id, render.RESUME_ACTION, value, channel=t1.channel,
                       message_ts=answer.ts) for _ in range(2)))
    await scenario.idle()
    late = await scenario.press(t1, ADA.id, render.RESUME_ACTION, value, channel=t1.channel,
                                message_ts=answer.ts)
    await scenario.idle()

    assert [p.status for p in (*presses, late)] == [200, 200, 200]
    [run] = await runs_of(scenario, "acme")
    assert (run.status, run.attempts) == ("completed", 2)
    started = await audit_events(scenario, "acme", events.RUN_STARTED)
    assert [e.fields.get("resumed", False) for e in started] == [False, True]
    [final] = thread(scenario.slack, t1.channel, mention)
    assert final.ts == answer.ts, "the halted message itself carries the answer"
    assert final.text == run.answer and "budget.status" in final.text
    assert final.blocks == ()


async def test_an_admin_may_resume_someone_elses_run(scenario: Scenario) -> None:
    t1, mention, answer = await halted(scenario)
    await scenario.db.run(update_plan, "tight", limits={"run_tool_calls": 5})

    await scenario.press(t1, OWNER.id, render.RESUME_ACTION, resume_value(answer),
                         channel=t1.channel, message_ts=answer.ts)
    await scenario.idle()

    [run] = await runs_of(scenario, "acme")
    assert run.status == "completed"
    assert run.principal_id == f"slack:T1:{ADA.id}", "the run keeps its own principal"
    assert thread(scenario.slack, t1.channel, mention)[0].text == run.answer


def calls_budget_status(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A model that asks for ``budget.status`` whether or not it was offered."""
    if not any(isinstance(m, ModelResponse) for m in messages):
        return ModelResponse(parts=[ToolCallPart("budget__status", {}, tool_call_id="b1")])
    return ModelResponse(parts=[TextPart("I could not check the budget.")])


async def test_an_unlicensed_tool_is_refused_in_plain_words(scenario: Scenario) -> None:
    await scenario.tenant("acme", plan("basic", capabilities=frozenset({"runs.status"})))
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    scenario.runtime.agent.models = ScriptedModels(scenario.settings, calls_budget_status)

    mention = await scenario.mention(t1, ADA.id, "how much have we spent?")
    await scenario.idle()

    [answer] = thread(scenario.slack, t1.channel, mention)
    assert answer.text.splitlines() == [
        "I could not check the budget.", "", render.tool_refused("budget.status", "not_licensed")]
    assert "your plan doesn't include it" in answer.text
    [refused] = await audit_events(scenario, "acme", events.TOOL_REFUSED)
    assert (refused.fields["capability"], refused.fields["reason"]) == (
        "budget.status", "not_licensed")
    assert not await audit_events(scenario, "acme", events.TOOL_INVOKED)


async def test_a_request_too_large_for_the_plan_is_refused_in_its_thread(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme", plan("small", run_tokens=600))
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])

    mention = await scenario.mention(t1, ADA.id, "summarise this: " + "lorem ipsum " * 200)
    await scenario.idle()

    [answer] = thread(scenario.slack, t1.channel, mention)
    assert answer.text == render.refusal("run_ceiling_too_small")
    assert "too large for one answer" in answer.text
    assert await runs_of(scenario, "acme") == []
    [refused] = await audit_events(scenario, "acme", events.RUN_REFUSED)
    assert refused.fields["reason"] == "run_ceiling_too_small"
