"""Budget halts as Adaptive Cards with Resume, who may press it, and the budget and audit
cards with their Verify action."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bots.teams import render
from core.authz import grant as grant_role
from core.tenants import update_plan
from standins.teams.activities import Conversation, TeamsUser, group_chat
from tests.scenarios.harness import Scenario, runs_of
from tests.support.tenancy import plan

ORG = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
ADA = TeamsUser("Ada")
BOB = TeamsUser("Bob")
ADMIN = TeamsUser("Grace")


def principal(user: TeamsUser) -> str:
    return f"teams:{ORG}:{user.aad_object_id}"


@pytest.fixture
async def tight(teams: Scenario) -> Scenario:
    await teams.tenant("acme", plan("tight", run_tool_calls=1, capabilities=frozenset(
        {"budget.status", "knowledge.search"})))
    await teams.teams.link(ORG, "acme", admin=ADMIN)
    return teams


async def halted(s: Scenario) -> tuple[Conversation, dict[str, Any], str]:
    """Ada's request for two tools, halted by a plan that allows one tool call per run."""
    chat = group_chat(ORG)
    await s.teams.send(s.teams.activities.message(chat, ADA,
                                                  "check budget.status and knowledge.search?"))
    await s.idle()
    [card] = s.teams.cards(chat.id)
    [run] = await runs_of(s, "acme")
    return chat, card, run.id


def actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in card.get("actions", []) if a.get("type") == "Action.Execute"]


async def press(s: Scenario, chat: Conversation, user: TeamsUser, verb: str,
                data: dict[str, Any] | None = None) -> dict[str, Any]:
    status, body = await s.teams.send(s.teams.activities.card_action(chat, user, verb, data))
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    card: dict[str, Any] = body["value"]
    return card


async def test_a_budget_halt_is_a_card_with_its_figures_and_resume(tight: Scenario) -> None:
    _chat, card, run_id = await halted(tight)

    [run] = await runs_of(tight, "acme")
    assert run.status == "halted"
    shown = json.dumps(card)
    assert "per-request tool-call limit" in shown and '"1"' in shown
    [resume] = actions(card)
    assert (resume["verb"], resume["data"]) == (render.RESUME_VERB, {"run_id": run_id})


async def test_resume_pressed_by_another_member_is_refused(tight: Scenario) -> None:
    chat, _card, run_id = await halted(tight)
    await tight.db.run(update_plan, "tight", limits={"run_tool_calls": 5})

    reply = await press(tight, chat, BOB, render.RESUME_VERB, {"run_id": run_id})
    await tight.idle()

    assert render.resume_denied() in json.dumps(reply)
    [run] = await runs_of(tight, "acme")
    assert (run.status, run.attempts) == ("halted", 1)


async def test_resume_pressed_twice_by_the_asker_resumes_once(tight: Scenario) -> None:
    chat, _card, run_id = await halted(tight)
    await tight.db.run(update_plan, "tight", limits={"run_tool_calls": 5})

    replies = await asyncio.gather(*(press(tight, chat, ADA, render.RESUME_VERB,
                                           {"run_id": run_id}) for _ in range(2)))
    await tight.idle()
    late = await press(tight, chat, ADA, render.RESUME_VERB, {"run_id": run_id})

    texts = sorted(json.dumps(r, ensure_ascii=False) for r in replies)
    assert sum(render.resume_started() in t for t in texts) == 1
    assert sum(render.already_resumed() in t for t in texts) == 1
    assert render.already_resumed() in json.dumps(late, ensure_ascii=False)
    [run] = await runs_of(tight, "acme")
    assert (run.status, run.attempts) == ("completed", 2)
    assert "[sandbox" in tight.teams.texts(chat.id)[-1]


async def test_a_tenant_admin_may_resume_someone_elses_run(tight: Scenario) -> None:
    chat, _card, run_id = await halted(tight)
    await tight.db.run(update_plan, "tight", limits={"run_tool_calls": 5})

    await press(tight, chat, ADMIN, render.RESUME_VERB, {"run_id": run_id})
    await tight.idle()

    [run] = await runs_of(tight, "acme")
    assert run.status == "completed" and run.principal_id == principal(ADA)


async def test_a_resume_naming_another_tenants_run_finds_nothing(tight: Scenario) -> None:
    await tight.tenant("globex")
    grant = await tight.runtime.agent.open(tenant_id="globex", principal_id="someone")
    chat = group_chat(ORG)

    reply = await press(tight, chat, ADMIN, render.RESUME_VERB, {"run_id": grant.ctx.run_id})

    assert render.already_resumed() in json.dumps(reply, ensure_ascii=False)


async def test_the_budget_card_shows_a_member_the_month_and_no_verify(tight: Scenario) -> None:
    chat, _card, _run_id = await halted(tight)

    await tight.teams.send(tight.teams.activities.message(chat, BOB, "budget"))
    await tight.idle()

    card = tight.teams.cards(chat.id)[-1]
    shown = json.dumps(card, ensure_ascii=False)
    assert "Acme" in shown and "tight" in shown
    assert actions(card) == []


async def test_an_admin_verifies_the_audit_log_from_the_card(tight: Scenario) -> None:
    chat, _card, _run_id = await halted(tight)
    await tight.teams.send(tight.teams.activities.message(chat, ADMIN, "audit"))
    await tight.idle()
    [verify] = actions(tight.teams.cards(chat.id)[-1])

    member = await press(tight, chat, BOB, verify["verb"])
    reply = await press(tight, chat, ADMIN, verify["verb"])
    await tight.idle()

    assert render.verify_denied() in json.dumps(member, ensure_ascii=False)
    assert render.verify_started() in json.dumps(reply, ensure_ascii=False)
    assert "Audit log verified" in json.dumps(tight.teams.cards(chat.id)[-1], ensure_ascii=False)


async def test_a_member_granted_admin_in_the_tenant_sees_the_admin_card(teams: Scenario) -> None:
    await teams.tenant("acme")
    await teams.teams.link(ORG, "acme")
    await teams.db.run(grant_role, "acme", principal(BOB), "admin")
    chat = group_chat(ORG)

    await teams.teams.send(teams.teams.activities.message(chat, BOB, "audit"))
    await teams.idle()

    [verify] = actions(teams.teams.cards(chat.id)[-1])
    assert verify["verb"] == render.VERIFY_VERB
