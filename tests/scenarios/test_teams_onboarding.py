"""Onboarding a Teams organisation: pending at install, linked by an admin's code in a
1:1 chat, refused for anyone else or anywhere else, revoked at uninstall."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bots.teams import render
from core.audit import events
from core.authz import grant as grant_role
from installs.teams_conversations import conversation_reference
from installs.teams_links import issue_link_code, resolve_teams
from standins.teams.activities import Conversation, TeamsUser, group_chat, personal_chat
from tests.scenarios.harness import Scenario, audit_events, runs_of

ORG = "7d6c5b4a-3928-4716-a5b4-c3d2e1f0a9b8"
ADMIN = TeamsUser("Grace")
MEMBER = TeamsUser("Linus")


def principal(user: TeamsUser) -> str:
    return f"teams:{ORG}:{user.aad_object_id}"


@pytest.fixture
async def acme(teams: Scenario) -> Scenario:
    await teams.tenant("acme")
    await teams.db.run(grant_role, "acme", principal(ADMIN), "admin")
    return teams


async def code_for(s: Scenario, tenant_id: str = "acme",
                   ttl: timedelta = timedelta(hours=1)) -> str:
    rt = s.runtime
    code: str = await rt.db.run(issue_link_code, rt.keyring, tenant_id, ttl)
    return code


async def say(s: Scenario, where: Conversation, user: TeamsUser, text: str) -> None:
    await s.teams.send(s.teams.activities.message(where, user, text))
    await s.idle()


async def test_installing_records_the_organisation_as_pending_and_says_how_to_link(
    acme: Scenario,
) -> None:
    chat = group_chat(ORG)
    added = acme.teams.activities.installation_update(chat, ADMIN, "add")

    statuses = [(await acme.teams.send(added)).status for _ in range(2)]  # and a retry
    await acme.idle()

    assert statuses == [202, 202]
    link = await acme.db.run(resolve_teams, ORG)
    assert link is not None and (link.status, link.tenant_id) == ("pending", None)
    assert acme.teams.texts(chat.id) == [render.installed_pending()]
    await say(acme, chat, MEMBER, "hello")
    assert acme.teams.texts(chat.id)[-1] == render.refusal("not_linked")


async def test_an_admin_links_the_organisation_with_a_code_in_a_1to1_chat(
    acme: Scenario,
) -> None:
    chat = personal_chat(ORG)

    await say(acme, chat, ADMIN, f"link {await code_for(acme)}")
    await say(acme, chat, ADMIN, "what can you do?")

    link = await acme.db.run(resolve_teams, ORG)
    assert link is not None and (link.status, link.tenant_id, link.linked_by) == (
        "active", "acme", principal(ADMIN))
    assert acme.teams.texts(chat.id)[0] == render.linked("Acme")
    [linked] = await audit_events(acme, "acme", events.WORKSPACE_LINKED)
    assert linked.fields["entra_tenant_id"] == ORG and linked.fields["by"] == principal(ADMIN)
    [run] = await runs_of(acme, "acme")
    assert run.principal_id == principal(ADMIN)


async def test_a_member_who_is_not_an_admin_cannot_link_and_the_code_stays_usable(
    acme: Scenario,
) -> None:
    chat, code = personal_chat(ORG), await code_for(acme)

    await say(acme, chat, MEMBER, f"link {code}")

    [reply] = acme.teams.texts(chat.id)
    assert reply.startswith(render.link_failed("not_admin"))
    assert principal(MEMBER) in reply  # what the operator grants the role to
    assert await acme.db.run(resolve_teams, ORG) is None
    await say(acme, chat, ADMIN, f"link {code}")
    link = await acme.db.run(resolve_teams, ORG)
    assert link is not None and link.active


async def test_a_code_sent_in_a_group_chat_is_refused_unspent(acme: Scenario) -> None:
    chat, code = group_chat(ORG), await code_for(acme)

    await say(acme, chat, ADMIN, f"link {code}")

    assert acme.teams.texts(chat.id) == [render.link_failed("not_personal")]
    assert await acme.db.run(resolve_teams, ORG) is None
    await say(acme, personal_chat(ORG), ADMIN, f"link {code}")
    assert (await acme.db.run(resolve_teams, ORG)) is not None


async def test_a_code_works_once_and_not_after_it_expires(acme: Scenario) -> None:
    other_org = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"
    await acme.tenant("globex")
    await acme.db.run(grant_role, "globex", f"teams:{other_org}:{ADMIN.aad_object_id}", "admin")
    code, short = await code_for(acme), await code_for(acme, ttl=timedelta(seconds=1))

    await say(acme, personal_chat(ORG), ADMIN, f"link {code}")
    reused = personal_chat(other_org)
    await say(acme, reused, ADMIN, f"link {code}")
    await asyncio.sleep(1.1)
    late = personal_chat(other_org)
    await say(acme, late, ADMIN, f"link {short}")
    forged = personal_chat(other_org)
    await say(acme, forged, ADMIN, "link not-a-code")

    assert acme.teams.texts(reused.id) == [render.link_failed("already_used")]
    assert acme.teams.texts(late.id) == [render.link_failed("expired")]
    assert acme.teams.texts(forged.id) == [render.link_failed("bad_signature")]
    assert await acme.db.run(resolve_teams, other_org) is None


async def test_uninstalling_revokes_the_link_audited_and_keeps_the_data(acme: Scenario) -> None:
    chat = personal_chat(ORG)
    await say(acme, chat, ADMIN, f"link {await code_for(acme)}")
    await say(acme, chat, ADMIN, "remember this")

    removed = acme.teams.activities.installation_update(chat, ADMIN, "remove")
    assert (await acme.teams.send(removed)).status == 202
    await acme.idle()
    await say(acme, chat, ADMIN, "are you there?")

    link = await acme.db.run(resolve_teams, ORG)
    assert link is not None and link.status == "revoked"
    [unlinked] = await audit_events(acme, "acme", events.WORKSPACE_UNLINKED)
    assert unlinked.fields["entra_tenant_id"] == ORG
    assert acme.teams.texts(chat.id)[-1] == render.refusal("link_revoked")
    assert await acme.db.run(conversation_reference, "acme", chat.id) is None
    assert len(await runs_of(acme, "acme")) == 1  # kept until an explicit purge
    refused = await audit_events(acme, "acme", events.RUN_REFUSED)
    assert [e.fields["reason"] for e in refused] == ["link_revoked"]
