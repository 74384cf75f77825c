"""Slash commands, mentions and DMs, from signed request to the answer in Slack."""

from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelResponse, UserPromptPart
from pydantic_ai.models.function import AgentInfo

from bots.slack import render
from core.sandbox import LABEL, sandbox_reply
from standins.slack.api import SlackUser
from tests.scenarios.harness import Scenario, runs_of, thread
from tests.support.scripted import ScriptedModels

ADA = SlackUser("U1ADA", name="ada")
BOB = SlackUser("U1BOB", name="bob")


async def test_a_slash_command_is_acked_at_once_and_answered_in_a_thread(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])

    sent = await scenario.command(t1, ADA.id, "what is on the roadmap")

    assert sent.status == 200
    assert sent.elapsed < 1.0
    assert sent.text == render.ACK_WORKING, "a plain-text ack is shown only to the sender"
    await scenario.idle()
    [root] = [m for m in scenario.slack.messages(t1.channel) if m.thread_ts is None]
    assert root.text == render.asked(ADA.id, "what is on the roadmap")
    [answer] = thread(scenario.slack, t1.channel, root.ts)
    [run] = await runs_of(scenario, "acme")
    assert answer.text == run.answer
    assert run.status == "completed"
    assert answer.text.startswith(LABEL)
    assert "You asked: what is on the roadmap" in answer.text
    assert run.principal_id == f"slack:T1:{ADA.id}"
    assert run.conversation_id == f"slack:T1:{t1.channel}:{root.ts}"
    assert run.correlation_id is not None and run.correlation_id.startswith("command:")


async def test_an_empty_slash_command_gets_a_hint_and_no_run(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])

    sent = await scenario.command(t1, ADA.id, "   ")

    await scenario.idle()
    assert sent.text == render.ask_hint(scenario.slack_settings.command)
    assert await runs_of(scenario, "acme") == []
    assert scenario.slack.messages(t1.channel) == []


async def test_a_mention_is_answered_in_its_thread(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])

    mention = await scenario.mention(t1, ADA.id, "summarise the launch plan")
    await scenario.idle()

    [answer] = thread(scenario.slack, t1.channel, mention)
    [run] = await runs_of(scenario, "acme")
    assert answer.text == run.answer
    assert "You asked: summarise the launch plan" in answer.text
    assert answer.stream_state == "stopped"
    assert run.conversation_id == f"slack:T1:{t1.channel}:{mention}"
    methods = [c.method for c in scenario.slack.calls(token=t1.token)
               if c.method.startswith("chat.")]
    # One stream: started, appended to as the model wrote, stopped; never posted or edited.
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream"
    assert set(methods[1:-1]) == {"chat.appendStream"} and len(methods) > 3


async def test_a_dm_is_answered_in_the_conversation(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])

    await scenario.dm(t1, ADA.id, "what can you do")
    await scenario.idle()

    [answer] = scenario.slack.messages("D0001")
    [run] = await runs_of(scenario, "acme")
    assert answer.thread_ts is None
    assert answer.text == run.answer
    assert "You asked: what can you do" in answer.text
    assert run.conversation_id == "slack:T1:D0001:main"


def prompts_seen(scenario: Scenario) -> list[list[str]]:
    """The prompts the sandbox model is shown, call by call, from now on."""
    seen: list[list[str]] = []

    def sandbox_noting_prompts(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append([part.content for message in messages for part in message.parts
                     if isinstance(part, UserPromptPart) and isinstance(part.content, str)])
        return sandbox_reply(messages, info)

    scenario.runtime.agent.models = ScriptedModels(scenario.settings, sandbox_noting_prompts)
    return seen


async def test_a_follow_up_in_the_thread_continues_the_conversation(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA, BOB])
    seen = prompts_seen(scenario)
    first = await scenario.mention(t1, ADA.id, "first question")
    await scenario.idle()
    await scenario.mention(t1, ADA.id, "second question", thread_ts=first)
    await scenario.idle()
    await scenario.mention(t1, ADA.id, "a new topic")
    await scenario.idle()

    runs = await runs_of(scenario, "acme")
    assert [r.prompt for r in runs] == ["first question", "second question", "a new topic"]
    assert runs[0].conversation_id == runs[1].conversation_id
    assert runs[2].conversation_id != runs[0].conversation_id
    answers = thread(scenario.slack, t1.channel, first)
    assert [a.text for a in answers] == [runs[0].answer, runs[1].answer]
    assert seen == [["first question"], ["first question", "second question"], ["a new topic"]]


async def test_follow_up_dms_share_one_conversation(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    seen = prompts_seen(scenario)

    await scenario.dm(t1, ADA.id, "one")
    await scenario.idle()
    await scenario.dm(t1, ADA.id, "two")
    await scenario.idle()

    runs = await runs_of(scenario, "acme")
    assert {r.conversation_id for r in runs} == {"slack:T1:D0001:main"}
    assert seen == [["one"], ["one", "two"]], "the second DM saw the first"


async def test_messages_the_app_must_not_answer_start_no_run(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    base = {"type": "message", "channel": "D0001", "user": ADA.id, "ts": scenario.next_ts(),
            "team": "T1", "text": "hi"}

    for event in (
        {**base, "channel_type": "channel", "channel": t1.channel},
        {**base, "channel_type": "im", "subtype": "message_changed"},
        {**base, "channel_type": "im", "bot_id": "BOTHER"},
        {**base, "channel_type": "im", "text": None},
        {"type": "reaction_added", "user": ADA.id, "reaction": "tada"},
    ):
        assert (await scenario.event(t1, event)).status == 200

    await scenario.idle()
    assert await runs_of(scenario, "acme") == []
    assert scenario.slack.calls("chat.postMessage") == []


async def test_a_bare_mention_gets_a_hint_in_its_thread(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])

    mention = await scenario.mention(t1, ADA.id, "")
    await scenario.idle()

    [reply] = thread(scenario.slack, t1.channel, mention)
    assert reply.text == render.ask_hint(scenario.slack_settings.command)
    assert await runs_of(scenario, "acme") == []
