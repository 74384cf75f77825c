"""Digests in Slack through the real app: fired by its clock's callback, posted with the
workspace's own token, halts told to the admins, and paused from the App Home."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bots.digests import DIGEST_PRINCIPAL
from bots.slack import render
from bots.web import CLOCK
from core.admin import Admin
from core.audit import events
from core.authz import grant as grant_role
from core.digests.destinations import SlackDestination
from core.digests.records import Digest, get_digest
from core.runs import get_run
from standins.slack.api import SlackUser
from tests.scenarios.harness import Scenario, Workspace, audit_events, runs_of
from tests.support.tenancy import plan

ADA = SlackUser("U1ADA", name="ada")
BOSS = SlackUser("U1BOSS", name="boss")
FIRE_TIME = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


async def digest_in(s: Scenario, ws: Workspace, tenant_id: str = "acme",
                    prompt: str = "What happened yesterday?") -> Digest:
    admin = Admin(s.db, s.runtime.audit, s.runtime.keyring, by="cli:ops")
    # Once a year: the app's own clock must not fire it while a scenario runs.
    return await admin.add_digest(tenant_id, name="Morning news", cron="0 3 1 1 *",
                                  prompt=prompt,
                                  destination=SlackDestination(ws.team_id, ws.channel))


async def fire(s: Scenario, digest: Digest, when: datetime = FIRE_TIME) -> None:
    """What the clock does at ``when``: hand the firing to the app's callback."""
    await s.app[CLOCK].fire(digest.tenant_id, digest.id, when)
    await s.idle()


async def test_a_digest_posts_its_answer_into_its_channel_once(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    t9 = await scenario.link_workspace("T9", "globex", users=[SlackUser("U9")])
    digest = await digest_in(scenario, t1)

    await fire(scenario, digest)
    await fire(scenario, digest)  # a second clock, or a retry: the same firing

    [posted] = scenario.slack.messages(t1.channel)
    assert "*Morning news*" in posted.text and "[sandbox" in posted.text
    [call] = scenario.slack.calls("chat.postMessage", team_id="T1")
    assert call.token == t1.token
    assert scenario.slack.messages(t9.channel) == []
    [run] = await runs_of(scenario, "acme")
    assert (run.initiator, run.principal_id) == ("cron", DIGEST_PRINCIPAL)
    assert await runs_of(scenario, "globex") == []


async def test_a_halted_digest_is_posted_and_sent_to_the_tenants_admins(
        scenario: Scenario) -> None:
    await scenario.tenant("acme", plan(
        "tight", run_tool_calls=1,
        capabilities=frozenset({"budget.status", "knowledge.search"})))
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA, BOSS])
    await scenario.db.run(grant_role, "acme", DIGEST_PRINCIPAL, "member")
    await scenario.db.run(grant_role, "acme", f"slack:T1:{BOSS.id}", "admin")
    digest = await digest_in(scenario, t1,
                             prompt="Check budget.status, and what does the runbook say?")

    await fire(scenario, digest)

    [run] = await runs_of(scenario, "acme")
    assert run.status == "halted"
    [posted] = scenario.slack.messages(t1.channel)
    assert "tool-call limit" in posted.text and f"runs resume {run.id}" in posted.text
    [dm] = scenario.slack.messages(BOSS.id)
    assert "tool-call limit" in dm.text and f"<#{t1.channel}>" in dm.text
    assert scenario.slack.messages(ADA.id) == []


async def test_an_unlinked_workspace_pauses_the_digest_and_nothing_is_posted(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    digest = await digest_in(scenario, t1)
    await scenario.event(t1, {"type": "app_uninstalled", "event_ts": scenario.next_ts()})
    await scenario.idle()

    await fire(scenario, digest)

    assert scenario.slack.messages(t1.channel) == []
    stored = await scenario.db.run(get_digest, "acme", digest.id)
    assert (stored.status, stored.paused_reason) == ("paused", "destination_revoked")
    [paused] = await audit_events(scenario, "acme", events.DIGEST_PAUSED)
    assert paused.fields["detail"] in ("link_revoked", "not_linked")


async def test_an_admin_pauses_and_resumes_a_digest_from_the_app_home_and_a_member_cannot(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme",
                                       users=[ADA, SlackUser("U1ROOT", name="root",
                                                             is_admin=True)])
    digest = await digest_in(scenario, t1)
    for user in (ADA.id, "U1ROOT"):
        await scenario.event(t1, {"type": "app_home_opened", "user": user, "channel": "D1",
                                  "tab": "home", "event_ts": scenario.next_ts()})
    await scenario.idle()
    member = json.dumps(scenario.slack.published_views(ADA.id)["T1"])
    admin = json.dumps(scenario.slack.published_views("U1ROOT")["T1"])
    assert render.DIGEST_ACTION not in member and "Morning news" not in member
    assert render.DIGEST_ACTION in admin and "Morning news" in admin

    async def press(user: str) -> str:
        await scenario.press(t1, user, render.DIGEST_ACTION, digest.id, channel="D1",
                             message_ts=scenario.next_ts())
        await scenario.idle()
        return (await scenario.db.run(get_digest, "acme", digest.id)).status

    assert await press(ADA.id) == "active", "a member's press changes nothing"
    assert await press("U1ROOT") == "paused"
    assert "Resume" in json.dumps(scenario.slack.published_views("U1ROOT")["T1"])
    await fire(scenario, digest)
    assert scenario.slack.messages(t1.channel) == [], "a paused digest does not fire"
    assert await press("U1ROOT") == "active"

    found = await audit_events(scenario, "acme", events.DIGEST_PAUSED, events.DIGEST_RESUMED)
    assert [(e.event, e.fields["by"]) for e in found] == [
        (events.DIGEST_PAUSED, "slack:T1:U1ROOT"), (events.DIGEST_RESUMED, "slack:T1:U1ROOT")]
    assert [e.fields.get("reason") for e in found] == ["admin", None]


async def test_an_older_firing_arriving_late_runs_and_posts_nothing(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    digest = await digest_in(scenario, t1)
    await fire(scenario, digest)
    [run] = await runs_of(scenario, "acme")
    assert (await scenario.db.run(get_run, "acme", run.id)).status == "completed"

    await fire(scenario, digest, FIRE_TIME - timedelta(minutes=1))  # a retry from before

    assert len(scenario.slack.messages(t1.channel)) == 1
    assert len(await runs_of(scenario, "acme")) == 1
