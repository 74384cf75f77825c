"""Which tenant serves a workspace: links, uninstalls, suspensions, and two tenants at once."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bots.slack import render
from core.audit import events
from core.audit.events import WORKSPACE_UNLINKED
from core.budget.ledger import used
from core.tenants import set_status
from core.vectors.tables import conversation_turns
from installs.links import resolve, revoke
from installs.slack_store import SlackInstallationStore
from standins.slack.api import SlackUser
from tests.scenarios.harness import Scenario, audit_events, runs_of, thread, today
from tests.support.databases import fetch_all

ADA = SlackUser("U1ADA")
GUS = SlackUser("U2GUS")


async def test_an_unlinked_workspace_gets_a_short_reply_and_no_run(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t9 = await scenario.install("T9", users=[ADA])

    mention = await scenario.mention(t9, ADA.id, "hello?")
    command = await scenario.command(t9, ADA.id, "hello?")
    await scenario.idle()

    assert command.status == 200
    assert command.text == render.refusal("not_linked"), "told at once, never 'On it'"
    [reply] = thread(scenario.slack, t9.channel, mention)
    assert reply.text == render.refusal("not_linked")
    assert len(reply.text) < 200
    assert scenario.slack.ephemeral_messages(t9.channel) == [], "said once, in the ack"
    assert await runs_of(scenario, "acme") == []
    assert scenario.slack.calls("chat.startStream") == []


async def test_uninstalling_deletes_tokens_revokes_the_link_and_audits(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    t2 = await scenario.link_workspace("T2", "globex", users=[GUS])
    store = SlackInstallationStore(scenario.db, scenario.runtime.keyring)

    sent = await scenario.uninstalled(t1)
    await scenario.idle()
    again = await scenario.uninstalled(t1)
    await scenario.idle()

    assert (sent.status, again.status) == (200, 200)
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T1") is None
    link = await scenario.db.run(resolve, None, "T1", False)
    assert link is not None and link.status == "revoked" and link.revoked_at is not None
    [unlinked] = await audit_events(scenario, "acme", WORKSPACE_UNLINKED)
    assert unlinked.fields == {"team_id": "T1", "enterprise_id": None,
                               "reason": "app_uninstalled"}
    other = await scenario.db.run(resolve, None, "T2", False)
    assert other is not None and other.active and other.tenant_id == "globex"
    assert await store.async_find_bot(enterprise_id=None, team_id="T2") is not None
    assert await audit_events(scenario, "globex", WORKSPACE_UNLINKED) == []

    mention = await scenario.mention(t1, ADA.id, "still there?")
    await scenario.mention(t2, GUS.id, "still there?")
    await scenario.idle()
    assert thread(scenario.slack, t1.channel, mention) == [], "no token is left to answer with"
    assert await runs_of(scenario, "acme") == []
    assert len(await runs_of(scenario, "globex")) == 1


async def test_a_revoked_bot_token_unlinks_but_a_revoked_user_token_does_not(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])

    await scenario.tokens_revoked(t1, bot=False, users=[ADA.id])
    await scenario.idle()
    still = await scenario.db.run(resolve, None, "T1", False)
    await scenario.tokens_revoked(t1)
    await scenario.idle()

    assert still is not None and still.active
    gone = await scenario.db.run(resolve, None, "T1", False)
    assert gone is not None and gone.status == "revoked"
    [unlinked] = await audit_events(scenario, "acme", WORKSPACE_UNLINKED)
    assert unlinked.fields["reason"] == "tokens_revoked"


async def test_a_suspended_tenant_is_refused_in_the_thread_and_audited(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    await scenario.db.run(set_status, "acme", "suspended")

    mention = await scenario.mention(t1, ADA.id, "hello")
    await scenario.idle()

    [reply] = thread(scenario.slack, t1.channel, mention)
    assert reply.text == render.refusal("tenant_suspended")
    [refused] = await audit_events(scenario, "acme", events.RUN_REFUSED)
    assert refused.fields["reason"] == "tenant_suspended"
    assert refused.fields["principal"] == f"slack:T1:{ADA.id}"
    assert await runs_of(scenario, "acme") == []


async def test_two_tenants_interleaved_keep_their_tokens_budgets_and_history(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    t2 = await scenario.link_workspace("T2", "globex", users=[GUS])

    await asyncio.gather(*(
        scenario.mention(ws, user, f"question {n} for {ws.team_id}")
        for n in range(3) for ws, user in ((t1, ADA.id), (t2, GUS.id))
    ))
    await scenario.idle()

    for ws, tenant, user in ((t1, "acme", ADA.id), (t2, "globex", GUS.id)):
        runs = await runs_of(scenario, tenant)
        assert len(runs) == 3
        assert {r.principal_id for r in runs} == {f"slack:{ws.team_id}:{user}"}
        assert all(f"for {ws.team_id}" in r.prompt for r in runs)
        tokens, cost, _calls = await scenario.db.run(used, tenant, today())
        assert tokens == sum(r.input_tokens + r.output_tokens for r in runs) > 0
        assert cost == sum(r.cost_microcents for r in runs)
        writes = [c for c in scenario.slack.calls() if c.method.startswith("chat.")
                  and c.params.get("channel") == ws.channel]
        assert [c.method for c in writes].count("chat.startStream") == 3
        assert [c.method for c in writes].count("chat.stopStream") == 3
        assert {c.token for c in writes} == {ws.token}
        own = scenario.slack.calls(token=ws.token)
        assert {c.params.get("channel") for c in own if c.method.startswith("chat.")} == {
            ws.channel}
        assert {c.team_id for c in own} == {ws.team_id}
        answers = [m for m in scenario.slack.messages(ws.channel) if m.thread_ts]
        assert sorted(m.text for m in answers) == sorted(r.answer or "" for r in runs)
        turns = [row.principal_id for row in await fetch_all(
            scenario.db, select(conversation_turns.c.principal_id)
            .where(conversation_turns.c.tenant_id == tenant))]
        assert set(turns) == {f"slack:{ws.team_id}:{user}"} and len(turns) == 6


async def test_an_org_wide_install_serves_every_team_of_the_org(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    grid_user = SlackUser("W3GIL", is_org_admin=True)
    t3 = await scenario.link_workspace("T3", "acme", enterprise_id="E1", org_wide=True,
                                       users=[grid_user])

    mention = await scenario.mention(t3, grid_user.id, "hello from the org")
    await scenario.command(t3, grid_user.id, "and a command")
    await scenario.idle()

    [answer] = thread(scenario.slack, t3.channel, mention)
    runs = await runs_of(scenario, "acme")
    assert [r.status for r in runs] == ["completed", "completed"]
    assert {r.principal_id for r in runs} == {f"slack:T3:{grid_user.id}"}
    assert answer.text == next(r.answer for r in runs if r.prompt == "hello from the org")
    assert {c.token for c in scenario.slack.calls() if c.method.startswith("chat.")} == {
        t3.token}


async def test_a_link_revoked_by_an_operator_is_refused_and_audited(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    await scenario.db.run(revoke, None, "T1")

    mention = await scenario.mention(t1, ADA.id, "hello")
    await scenario.idle()

    [reply] = thread(scenario.slack, t1.channel, mention)
    assert reply.text == render.refusal("link_revoked")
    [refused] = await audit_events(scenario, "acme", events.RUN_REFUSED)
    assert refused.fields["reason"] == "link_revoked"
    assert await runs_of(scenario, "acme") == []
