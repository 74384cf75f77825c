"""The App Home, opened and verified through signed requests."""

from __future__ import annotations

import json

from bots.slack import render
from standins.slack.api import SlackUser
from tests.scenarios.harness import Scenario

ADA = SlackUser("U1ADA", name="ada")
BOSS = SlackUser("U1BOSS", name="boss", is_admin=True)


def text_of(view: dict[str, object]) -> str:
    return json.dumps(view)


async def test_opening_the_home_tab_publishes_the_tenants_view(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA, BOSS])
    await scenario.link_workspace("T9", "globex", users=[SlackUser("U9", name="zed")])
    await scenario.command(t1, ADA.id, "check budget.status")
    await scenario.idle()

    for user in (ADA, BOSS):
        sent = await scenario.event(t1, {"type": "app_home_opened", "user": user.id,
                                         "channel": "D1", "tab": "home",
                                         "event_ts": scenario.next_ts()})
        assert sent.status == 200
    await scenario.idle()

    member = text_of(scenario.slack.published_views(ADA.id)["T1"])
    admin = text_of(scenario.slack.published_views(BOSS.id)["T1"])
    assert "check budget.status" in member
    assert render.VERIFY_ACTION not in member
    assert render.VERIFY_ACTION in admin
    assert "globex" not in member + admin and "U9" not in member + admin

    await scenario.press(t1, BOSS.id, render.VERIFY_ACTION, "verify", channel="D1",
                         message_ts=scenario.next_ts())
    await scenario.idle()
    verified = text_of(scenario.slack.published_views(BOSS.id)["T1"])
    assert "Audit log verified" in verified

    await scenario.press(t1, ADA.id, render.VERIFY_ACTION, "verify", channel="D1",
                         message_ts=scenario.next_ts())
    await scenario.idle()
    assert "Audit log verified" not in text_of(scenario.slack.published_views(ADA.id)["T1"])


async def test_a_run_resumed_at_startup_is_delivered_into_its_message(
        scenario: Scenario) -> None:
    from bots.slack.app import SLACK
    from core.agent import RunOutcome
    from tests.scenarios.harness import runs_of, thread

    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    root_ts = scenario.next_ts()
    await scenario.mention(t1, ADA.id, "hello there", thread_ts=root_ts)
    await scenario.idle()
    [run] = await runs_of(scenario, "acme")
    answers = scenario.app[SLACK].answers
    await answers.deliver(RunOutcome(run_id=run.id, tenant_id="acme", status="completed",
                                     model="sandbox", answer="finished after a restart"))
    texts = [m.text for m in thread(scenario.slack, t1.channel, root_ts)]
    assert texts[-1] == "finished after a restart"
    assert len(texts) == 1, "delivered into the same message, not a new one"
