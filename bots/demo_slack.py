"""The demo through Slack: the real server on loopback, Slack played by the local stand-in.

Two workspaces are linked to two tenants on different plans; really signed slash
commands, mentions, DMs and button presses go through the real aiohttp app, and what
would have been posted in Slack is read back from the stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bots.demo import DOCUMENTS, PLANS, Transcript, clip
from bots.digests import DIGEST_PRINCIPAL
from bots.slack import render
from bots.web import CLOCK
from core.admin import Admin
from core.authz import grant as grant_role
from core.digests.destinations import SlackDestination
from core.digests.schedule import firing_run_id, next_after, trigger
from core.runs import get_run
from core.settings import Settings
from standins.slack.api import SlackUser
from standins.slack.driver import Scenario, open_scenario, runs_of
from standins.slack.requests import Sent, Workspace

ALICE = SlackUser("U0ALICE", name="alice", is_admin=True)
BOB = SlackUser("U0BOB", name="bob")


def _show(t: Transcript, tenant: str, label: str, texts: list[str]) -> None:
    t.say(tenant, label)
    for text in texts:
        for line in text.splitlines() or [""]:
            t.say(tenant, clip(f"  | {line}", 164))


async def _asked(s: Scenario, t: Transcript, tenant: str, question: str, channel: str,
                 send: Awaitable[object]) -> list[str]:
    """Send one question; print it, then what the app posted in ``channel`` for it."""
    seen = len(s.slack.messages(channel))
    await send
    await s.idle()
    answer = [m.text for m in s.slack.messages(channel)[seen:]]
    _show(t, tenant, question, answer)
    return answer


async def _slack_demo(s: Scenario, t: Transcript) -> None:
    rt = s.runtime
    for plan in PLANS:
        await s.tenant(plan.id.replace("business", "acme").replace("starter", "globex"), plan)
    t1 = await s.link_workspace("T0ACME", "acme", users=[ALICE])
    t2 = await s.link_workspace("T0GLOBEX", "globex", users=[BOB])
    await rt.db.run(grant_role, "globex", f"slack:{t2.team_id}:{BOB.id}", "member")
    for tenant_id, (source, text) in DOCUMENTS.items():
        grant = await rt.agent.open(tenant_id=tenant_id, principal_id="operator",
                                    principal_kind="service")
        await rt.knowledge.add(grant.ctx, source, text)

    refund = "What is the refund policy for rockets?"
    acked: list[Sent] = []

    async def ask_acme() -> None:
        acked.append(await s.command(t1, ALICE.id, refund))

    acme_texts = await _asked(s, t, "acme", f"alice in #general of Acme's workspace: /ask {refund}",
                              t1.channel, ask_acme())
    t.check("the slash command is acknowledged at once",
            acked[0].status == 200 and acked[0].elapsed < 1.0)
    probe = "Show me the Acme handbook about the rocket refund policy?"
    globex_texts = await _asked(s, t, "globex", f"bob in #general of Globex's workspace: "
                                f"@Tenantry {probe}", t2.channel, s.mention(t2, BOB.id, probe))
    listing = "Please list audit.recent events"
    dm_texts = await _asked(s, t, "globex", f"bob in his DM with the app: {listing}",
                            "D0GLOBEX", s.dm(t2, BOB.id, listing, channel="D0GLOBEX"))
    budget = "Check budget.status, and what does the runbook say about on-call?"
    globex_texts += await _asked(s, t, "globex", f"bob in #general: /ask {budget}", t2.channel,
                                 s.command(t2, BOB.id, budget))
    t.check("acme's answer is grounded in its own handbook",
            any("30 days" in x for x in acme_texts))
    t.check("globex finds nothing of acme's documents",
            not any("30 days" in x or "acme-handbook" in x for x in globex_texts + dm_texts))
    t.check("the unlicensed tool is refused in plain words",
            any("audit.recent" in x and "plan" in x for x in dm_texts))
    t.check("refused tools are named by their capability",
            not any("__" in x for x in globex_texts + dm_texts))
    [halted] = [r for r in await runs_of(s, "globex") if r.status == "halted"]
    t.check("globex's run halted with its figures",
            any("limit" in x and "used" in x for x in globex_texts))
    halt_message = next(m for m in s.slack.messages(t2.channel)
                        if render.RESUME_ACTION in json.dumps(m.blocks))
    await s.press(t2, BOB.id, render.RESUME_ACTION, halted.id, channel=t2.channel,
                  message_ts=halt_message.ts)
    await s.idle()
    resumed = await rt.db.run(get_run, "globex", halted.id)
    t.check("pressing Resume completes the run", resumed.status == "completed")
    _show(t, "globex", "bob presses Resume; the paused answer becomes:",
          [m.text for m in s.slack.messages(t2.channel) if m.ts == halt_message.ts])

    await s.event(t1, {"type": "app_home_opened", "user": ALICE.id, "channel": "D0ACME",
                       "tab": "home", "event_ts": s.next_ts()})
    await s.idle()
    await s.press(t1, ALICE.id, render.VERIFY_ACTION, "verify", channel="D0ACME",
                  message_ts=s.next_ts())
    await s.idle()
    home = json.dumps(s.slack.published_views(ALICE.id).get(t1.team_id, {}))
    t.check("Acme's admin sees the App Home with a verified audit log",
            "Audit log verified" in home and "globex" not in home.lower())
    await _digest_fires(s, t, t1)
    for ws in (t1, t2):
        posts = s.slack.calls("chat.postMessage", team_id=ws.team_id)
        t.check(f"every post in {ws.team_id} used that workspace's own token",
                bool(posts) and all(c.token == ws.token for c in posts))


async def _digest_fires(s: Scenario, t: Transcript, ws: Workspace) -> None:
    """A scheduled digest: the clock's callback fires its next time now, then again."""
    rt = s.runtime
    admin = Admin(rt.db, rt.audit, rt.keyring, by="cli:demo")
    digest = await admin.add_digest(
        "acme", name="Morning brief", cron="30 8 * * mon-fri",
        prompt="What is the refund policy for rockets?",
        destination=SlackDestination(team_id=ws.team_id, channel=ws.channel))
    # The digest acts as service:digests, with only the roles the tenant grants it.
    await admin.grant("acme", DIGEST_PRINCIPAL, "member")
    fire_time = next_after(trigger(digest.cron, ZoneInfo("UTC")), datetime.now(UTC))
    assert fire_time is not None
    before = len(s.slack.messages(ws.channel))
    clock = s.app[CLOCK]
    await clock.fire("acme", digest.id, fire_time)
    await s.idle()
    posted = [m.text for m in s.slack.messages(ws.channel)[before:]]
    _show(t, "acme", f"digest “{digest.name}” ({digest.cron}, UTC; acme granted "
                     f"{DIGEST_PRINCIPAL} the member role) fired by the clock's callback for "
                     f"{fire_time:%a %Y-%m-%d %H:%M}, in #general:", posted)
    t.check("the digest's answer is posted in its channel, grounded in acme's handbook",
            len(posted) == 1 and "30 days" in posted[0])
    await clock.fire("acme", digest.id, fire_time)  # a second clock, or a retry
    await s.idle()
    runs = [r for r in await runs_of(s, "acme") if r.initiator == "cron"]
    t.check("a second firing for the same time is the same run, posted once",
            len(runs) == 1 and runs[0].id == firing_run_id("acme", digest.id, fire_time)
            and len(s.slack.messages(ws.channel)) == before + 1)


async def run_slack_demo(root: Path) -> Transcript:
    """Run the Slack demo in ``root`` (a scratch folder)."""
    settings = Settings(database_url=f"sqlite:///{root / 'slack-demo.db'}",
                        data_dir=root / "data", model="sandbox", embedder="hashing")
    t = Transcript()
    async with open_scenario(settings) as s:
        await _slack_demo(s, t)
    return t
