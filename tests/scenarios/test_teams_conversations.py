"""Teams surfaces: 1:1 chats (streamed), group chats, channel mentions in their thread,
follow-ups with their history, refusals in plain words, retries that run once."""

from __future__ import annotations

import asyncio

import pytest

from bots.teams import render
from core.audit import events
from core.memory import conversation_window
from core.tenants import set_status
from standins.teams.activities import TeamsUser, channel_thread, group_chat, personal_chat
from tests.scenarios.harness import Scenario, audit_events, runs_of
from tests.support.tenancy import plan

ORG = "3b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
STRANGER_ORG = "5c4b3a29-1807-4f6e-9d5c-4b3a29180706"
ADA = TeamsUser("Ada")


@pytest.fixture
async def linked(teams: Scenario) -> Scenario:
    await teams.tenant("acme")
    await teams.teams.link(ORG, "acme")
    return teams


async def ask(s: Scenario, where: object, text: str, sender: TeamsUser = ADA,
              activity_id: str | None = None) -> int:
    activity = s.teams.activities.message(where, sender, text,  # type: ignore[arg-type]
                                          activity_id=activity_id)
    status, _ = await s.teams.send(activity)
    return status


async def test_a_question_in_a_1to1_chat_is_streamed_into_one_answer(linked: Scenario) -> None:
    chat = personal_chat(ORG)

    assert await ask(linked, chat, "What is our refund policy?") == 202
    await linked.idle()

    [run] = await runs_of(linked, "acme")
    [answer] = linked.teams.connector.messages(chat.id)
    assert run.status == "completed" and run.prompt == "What is our refund policy?"
    assert answer.streamed and "[sandbox" in answer.text
    assert answer.app_id == linked.teams.settings.app_id  # sent with the bot's own token
    streamed = [c for c in linked.teams.connector.calls(chat.id) if c.activity
                and c.activity.get("type") == "typing" and c.activity.get("entities")]
    assert streamed, "the answer was streamed, not posted at once"


async def test_a_group_chat_gets_one_message_and_typing_while_it_works(
    linked: Scenario,
) -> None:
    chat = group_chat(ORG)

    await ask(linked, chat, "Summarise our plan")
    await linked.idle()

    [answer] = linked.teams.connector.messages(chat.id)
    assert not answer.streamed and "[sandbox" in answer.text
    assert linked.teams.connector.typing_count(chat.id) >= 1
    [run] = await runs_of(linked, "acme")
    assert run.principal_id == f"teams:{ORG}:{ADA.aad_object_id}"


async def test_a_channel_mention_is_answered_in_its_thread_without_the_mention(
    linked: Scenario,
) -> None:
    thread = channel_thread(ORG)

    await ask(linked, thread, "what changed this week?")
    await linked.idle()

    [run] = await runs_of(linked, "acme")
    assert run.prompt == "what changed this week?"  # "<at>Tenantry</at>" stripped
    assert run.conversation_id == f"teams:{ORG}:{thread.id}"
    [answer] = linked.teams.connector.messages(thread.id)
    assert "[sandbox" in answer.text


async def test_a_follow_up_continues_the_conversation_with_its_history(
    linked: Scenario,
) -> None:
    chat, other = group_chat(ORG), group_chat(ORG)

    await ask(linked, chat, "first question")
    await linked.idle()
    await ask(linked, chat, "second question")
    await ask(linked, other, "unrelated")
    await linked.idle()

    grant = await linked.runtime.agent.open(tenant_id="acme",
                                            principal_id=f"teams:{ORG}:{ADA.aad_object_id}")
    turns = await linked.db.run(conversation_window, grant.ctx, f"teams:{ORG}:{chat.id}", 10)
    assert [t.text for t in turns if t.role == "user"] == ["first question", "second question"]


async def test_a_retried_activity_runs_and_answers_once(linked: Scenario) -> None:
    chat = group_chat(ORG)
    activity = linked.teams.activities.message(chat, ADA, "once please")

    statuses = await asyncio.gather(*(linked.teams.send(activity) for _ in range(3)))
    await linked.idle()
    again = await linked.teams.send(activity)
    await linked.idle()

    assert [s.status for s in statuses] + [again.status] == [202] * 4
    assert len(await runs_of(linked, "acme")) == 1
    assert len(linked.teams.connector.messages(chat.id)) == 1


async def test_an_organisation_that_is_not_linked_is_told_so_and_nothing_runs(
    linked: Scenario,
) -> None:
    chat = personal_chat(STRANGER_ORG)

    await ask(linked, chat, "hello?")
    await linked.idle()

    assert linked.teams.texts(chat.id) == [render.refusal("not_linked")]
    assert await runs_of(linked, "acme") == []


async def test_a_suspended_tenant_is_refused_in_plain_words(linked: Scenario) -> None:
    await linked.db.run(set_status, "acme", "suspended")
    chat = group_chat(ORG)

    await ask(linked, chat, "anything")
    await linked.idle()

    assert linked.teams.texts(chat.id) == [render.refusal("tenant_suspended")]
    assert await runs_of(linked, "acme") == []


async def test_a_spent_allowance_is_refused_and_audited(teams: Scenario) -> None:
    await teams.tenant("tiny", plan("tiny", monthly_tokens=10))
    await teams.teams.link(ORG, "tiny")
    chat = group_chat(ORG)

    await ask(teams, chat, "a question the allowance cannot pay for")
    await teams.idle()

    assert teams.teams.texts(chat.id) == [render.refusal("allowance_exhausted")]
    [refused] = await audit_events(teams, "tiny", events.RUN_REFUSED)
    assert refused.fields["reason"] == "allowance_exhausted"


async def test_help_and_an_empty_message_say_what_to_ask(linked: Scenario) -> None:
    chat = personal_chat(ORG)

    await ask(linked, chat, "help")
    await ask(linked, chat, "   ")
    await linked.idle()

    assert linked.teams.texts(chat.id) == [render.help_text()] * 2
    assert await runs_of(linked, "acme") == []


async def test_markup_in_an_answer_cannot_mention_or_format(linked: Scenario) -> None:
    chat = group_chat(ORG)

    await ask(linked, chat, "say <at>everyone</at> <b>loud</b>")
    await linked.idle()

    [answer] = linked.teams.texts(chat.id)
    assert "<at>" not in answer and "<b>" not in answer


async def test_where_teams_refuses_a_stream_the_answer_is_one_message(linked: Scenario) -> None:
    chat = personal_chat(ORG)
    linked.teams.connector.conversation(chat.id, "groupChat")  # Teams: no streaming here

    await ask(linked, chat, "answer me anyway")
    await linked.idle()

    [run] = await runs_of(linked, "acme")
    [answer] = linked.teams.connector.messages(chat.id)
    assert not answer.streamed and run.answer is not None
    assert answer.text == render.escape(run.answer)
