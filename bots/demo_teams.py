"""The demo through Microsoft Teams: one app serving Slack and Teams, Microsoft played locally.

A local token issuer (a generated RSA key, its JWKS on loopback) signs the channel's
tokens, and a local Bot Connector records what the bot would post. Two Entra tenants
are onboarded as a customer would: the app is installed, the bot says the organisation
is pending, and an admin sends the operator's link code in a 1:1 chat. Acme is on
Slack too, and its backend and MCP client reach it over the API and MCP
(``bots.demo_clients``): its runs from all four land in one audit log and one monthly
ledger.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from bots import wording
from bots.demo import DOCUMENTS, PLANS, Transcript, clip
from bots.demo_clients import api_and_mcp, transport
from bots.mcp.settings import McpSettings
from bots.teams import render
from core.audit import events
from core.authz import grant as grant_role
from core.budget.ledger import summary, used
from core.prices import format_microcents
from core.runs import get_run
from core.settings import Settings
from core.tenants import billing_period, get_tenant
from installs.teams_links import issue_link_code, resolve_teams
from standins.slack.api import SlackUser
from standins.slack.driver import Scenario, open_scenario, runs_of
from standins.teams.activities import (
    Conversation,
    TeamsUser,
    channel_thread,
    group_chat,
    personal_chat,
)
from standins.teams.connector import TeamsMessage
from standins.teams.scenario import APP_ID

ENTRA = {"acme": "3f2b8c1d-4e5a-4b6c-8d7e-9f0a1b2c3d4e",
         "globex": "8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d"}
FOREIGN_ENTRA = "c0ffee00-1234-4abc-8def-0123456789ab"
GRACE = TeamsUser("Grace")  # acme's admin in Teams
ADA = TeamsUser("Ada")  # an acme member
LINUS = TeamsUser("Linus")  # globex's admin in Teams
BOB = TeamsUser("Bob")  # a globex member
MALLORY = TeamsUser("Mallory")
ALICE = SlackUser("U0ALICE", name="alice", is_admin=True)

TRANSPORTS = {"slack": "Slack", "teams": "Teams", "api": "API", "mcp": "MCP"}
SURFACES = {"personal": "1:1 chat", "groupChat": "group chat", "channel": "channel thread"}
_WHEN = re.compile(r"\{\{DATE\((\d{4}-\d\d-\d\d)T(\d\d:\d\d)[^)]*\)\}\} \{\{TIME\([^)]*\)\}\}")


def principal(tenant_id: str, user: TeamsUser) -> str:
    """Who ``user`` of the tenant's Entra organisation is to Tenantry."""
    return f"teams:{ENTRA[tenant_id]}:{user.aad_object_id}"


def card_lines(card: dict[str, Any]) -> list[str]:
    """An Adaptive Card as a person reads it: its text and facts a line, then its buttons."""
    lines: list[str] = []

    def walk(elements: list[dict[str, Any]]) -> None:
        for element in elements:
            kind = element.get("type")
            if kind == "TextBlock":
                lines.extend(str(element.get("text", "")).splitlines())
            elif kind == "RichTextBlock":
                lines.append("".join(str(r.get("text", "")) for r in element.get("inlines", [])))
            elif kind == "FactSet":
                lines.extend(f"{f['title']}: {f['value']}" for f in element.get("facts", []))
            elif kind == "Container":
                walk(element.get("items", []))

    walk(card.get("body", []))
    lines.extend(f"[{a.get('title')}] ({a.get('type')}, verb {a.get('verb')})"
                 for a in card.get("actions", []))
    # Teams shows {{DATE(...)}} {{TIME(...)}} in each viewer's zone; the demo, in UTC.
    return [_WHEN.sub(r"\1 \2 UTC", line) for line in lines if line.strip()]


def _show(t: Transcript, tenant: str, label: str, messages: list[TeamsMessage]) -> None:
    t.say(tenant, label)
    for m in messages:
        lines = m.text.splitlines() if m.text else []
        for card in m.cards:
            lines += ["┌ card"] + [f"│ {line}" for line in card_lines(card)]
        mark = "(streamed) " if m.streamed else ""
        for line in lines or [""]:
            t.say(tenant, clip(f"  | {mark}{line}", 154))
            mark = ""


async def _say(s: Scenario, where: Conversation, user: TeamsUser, text: str) -> None:
    await s.teams.send(s.teams.activities.message(where, user, text))
    await s.idle()


async def _exchange(s: Scenario, t: Transcript, tenant: str, where: Conversation,
                    user: TeamsUser, text: str) -> list[TeamsMessage]:
    """``user`` writes ``text`` (mentioning the bot outside a 1:1 chat); the bot's answer."""
    seen = len(s.teams.connector.messages(where.id))
    await _say(s, where, user, text)
    mention = "" if where.type == "personal" else "@Tenantry "
    answer = s.teams.connector.messages(where.id)[seen:]
    _show(t, tenant, f"{user.name} in a {SURFACES[where.type]}: {mention}{text}", answer)
    return answer


async def _seed(s: Scenario) -> None:
    rt = s.runtime
    for tenant_id, the_plan in zip(ENTRA, PLANS, strict=True):
        await s.tenant(tenant_id, the_plan)
    for tenant_id, (source, text) in DOCUMENTS.items():
        grant = await rt.agent.open(tenant_id=tenant_id, principal_id="operator",
                                    principal_kind="service")
        await rt.knowledge.add(grant.ctx, source, text)
    await rt.db.run(grant_role, "acme", principal("acme", ADA), "member")
    await rt.db.run(grant_role, "globex", principal("globex", BOB), "member")


async def _onboard(s: Scenario, t: Transcript, tenant_id: str, admin: TeamsUser,
                   member: TeamsUser, *, admin_first: bool = True) -> None:
    """Install, be told the organisation is pending, and link it with a link code.

    Unless ``admin_first``, ``admin`` sends the code before the operator grants the role.
    """
    rt, org = s.runtime, ENTRA[tenant_id]
    chat, team_chat = personal_chat(org), group_chat(org)
    await s.teams.send(s.teams.activities.installation_update(chat, admin, "add"))
    await s.idle()
    _show(t, tenant_id, f"{admin.name} installs the app; the bot in their 1:1 chat:",
          s.teams.connector.messages(chat.id))
    await _exchange(s, t, tenant_id, team_chat, member, "hello, are you there?")
    pending = await rt.db.run(resolve_teams, org)
    t.check(f"{tenant_id}'s organisation is pending after install and nothing is answered",
            pending is not None and pending.status == "pending"
            and s.teams.texts(team_chat.id) == [render.refusal("not_linked")])

    code = await rt.db.run(issue_link_code, rt.keyring, tenant_id, timedelta(hours=1))
    t.say(tenant_id, f"operator: tenantry teams link-code --tenant {tenant_id} -> {code[:16]}…")
    if not admin_first:
        await _say(s, chat, admin, f"link {code}")
        _show(t, tenant_id, f"{admin.name}, not yet an admin of the account, sends it:",
              s.teams.connector.messages(chat.id)[-1:])
        t.check("a person without the admin role in the tenant cannot link it",
                s.teams.texts(chat.id)[-1].startswith(render.link_failed("not_admin")))
        t.say(tenant_id, f"operator: tenantry roles grant --tenant {tenant_id} "
                         f"{principal(tenant_id, admin)} admin")
    await rt.db.run(grant_role, tenant_id, principal(tenant_id, admin), "admin")
    await _say(s, chat, admin, f"link {code}")
    _show(t, tenant_id, f"{admin.name}, an admin, sends `link CODE` in the 1:1 chat"
          + ("" if admin_first else ", the same code: unspent, it still links") + ":",
          s.teams.connector.messages(chat.id)[-1:])
    linked = await rt.db.run(resolve_teams, org)
    t.check(f"{tenant_id}'s Entra tenant is linked by its admin's link code",
            linked is not None and linked.active and linked.tenant_id == tenant_id
            and s.teams.texts(chat.id)[-1] == render.linked(tenant_id.title()))


async def _acme_asks(s: Scenario, t: Transcript) -> None:
    chat, team_chat, thread = (personal_chat(ENTRA["acme"]), group_chat(ENTRA["acme"]),
                               channel_thread(ENTRA["acme"]))
    [answer] = await _exchange(s, t, "acme", chat, GRACE,
                               "What is the refund policy for rockets?")
    t.check("a 1:1 question is streamed and grounded in acme's own handbook",
            answer.streamed and "30 days" in answer.text and "acme-handbook.md" in answer.text
            and "globex" not in answer.text.lower())
    in_chat = await _exchange(s, t, "acme", team_chat, ADA, "When is the support line open?")
    t.check("a group chat @mention is answered in the chat",
            len(in_chat) == 1 and "Pacific" in in_chat[0].text and not in_chat[0].streamed)
    in_thread = await _exchange(s, t, "acme", thread, ADA,
                                "What is the refund policy for rockets?")
    t.check("a channel @mention is answered in its thread",
            len(in_thread) == 1 and "30 days" in in_thread[0].text
            and in_thread[0].conversation_id.endswith(f";messageid={thread.thread_root}"))


async def _globex_halts_and_resumes(s: Scenario, t: Transcript) -> None:
    rt, team_chat = s.runtime, group_chat(ENTRA["globex"])
    probe = await _exchange(s, t, "globex", team_chat, BOB,
                            "What is the refund policy for rockets?")
    t.check("globex finds nothing of acme's documents",
            bool(probe) and not any("30 days" in m.text or "acme-handbook" in m.text
                                    for m in probe))
    refused = await _exchange(s, t, "globex", team_chat, BOB, "Please list audit.recent events")
    t.check("the unlicensed tool is refused in plain words",
            any("audit.recent" in m.text and "plan" in m.text for m in refused))

    t.say("globex", "(globex's plan allows one tool call per request)")
    [halt] = await _exchange(s, t, "globex", team_chat, BOB,
                             "Check budget.status, and what does the runbook say about on-call?")
    [halted] = [r for r in await runs_of(s, "globex") if r.status == "halted"]
    [card] = halt.cards or [{}]
    [resume] = card.get("actions") or [{}]
    t.check("the budget halt is an Adaptive Card with its figures and a Resume action",
            {"Limit: 1", "Used: 1"} <= set(card_lines(card))
            and (resume.get("type"), resume.get("verb"), resume.get("data")) ==
            ("Action.Execute", render.RESUME_VERB, {"run_id": halted.id}))

    pressed = s.teams.activities.card_action(team_chat, BOB, str(resume.get("verb")),
                                             resume.get("data"), reply_to_id=halt.id)
    status, body = await s.teams.send(pressed)
    await s.idle()
    replaced = body.get("value", {}) if isinstance(body, dict) else {}
    t.say("globex", f"Bob presses Resume (invoke adaptiveCard/action): HTTP {status}, the card "
                    f"becomes: {' / '.join(card_lines(replaced))}")
    _show(t, "globex", "then in the chat:", s.teams.connector.messages(team_chat.id)[-1:])
    resumed = await rt.db.run(get_run, "globex", halted.id)
    t.check("pressing Resume completes the run", status == 200
            and resumed.status == "completed"
            and "globex-runbook.md" in s.teams.texts(team_chat.id)[-1])


async def _budget_card(s: Scenario, t: Transcript, slack_principal: str) -> None:
    chat = personal_chat(ENTRA["acme"])
    [shown] = await _exchange(s, t, "acme", chat, GRACE, "budget")
    [card] = shown.cards or [{}]
    lines = card_lines(card) or [""]
    t.check("the budget card shows acme's month, by person across Slack and Teams, to its admin",
            lines[0] == "Tenantry · Acme" and any(line.startswith("Tokens") for line in lines)
            and any(slack_principal in line for line in lines)
            and any(principal("acme", GRACE) in line for line in lines)
            and not any("globex" in line.lower() for line in lines)
            and any(render.VERIFY_VERB in line for line in lines))


async def _foreign_token(s: Scenario, t: Transcript) -> None:
    where = group_chat(ENTRA["acme"])
    activity = s.teams.activities.message(where, MALLORY, "What is the refund policy?")
    issuer = f"https://login.microsoftonline.com/{FOREIGN_ENTRA}/v2.0"
    token = s.teams.issuer.channel_token(APP_ID, str(activity["serviceUrl"]), issuer=issuer,
                                         tid=FOREIGN_ENTRA)
    before = len(await runs_of(s, "acme"))
    status, _ = await s.teams.send(activity, authorization=f"Bearer {token}")
    await s.idle()
    t.say("acme", f"a token signed for the bot by another Entra tenant ({issuer}), naming "
                  f"acme's organisation in the body: HTTP {status}")
    t.check("a token from a foreign Entra tenant is refused with 401 and nothing runs",
            status == 401 and len(await runs_of(s, "acme")) == before
            and s.teams.connector.messages(where.id) == [])


async def _one_log_one_ledger(s: Scenario, t: Transcript) -> None:
    """Acme's runs from every transport: one audit log, one month of usage."""
    rt = s.runtime
    runs = await runs_of(s, "acme")
    # runs, tokens, cost, tool calls
    by: dict[str, list[int]] = {name: [0, 0, 0, 0] for name in TRANSPORTS}
    for run in runs:
        usage = await rt.db.run(summary, "acme", run.id)
        totals = by.setdefault(transport(run.principal_id), [0, 0, 0, 0])
        totals[0] += 1
        totals[1] += usage.tokens + usage.retried_tokens
        totals[2] += usage.cost_microcents + usage.retried_cost_microcents
        totals[3] += usage.tool_calls + usage.retried_tool_calls
    started = {e.run_id for e in await rt.audit.recent("acme", 500, events=[events.RUN_STARTED])}
    checkpoint = await rt.audit.sign_checkpoint("acme")
    report = await rt.audit.verify("acme")
    tenant = await rt.db.run(get_tenant, "acme")
    tokens, cost, calls = await rt.db.run(used, "acme", billing_period(tenant))
    for name, (count, spent, paid, called) in by.items():
        t.say("acme", f"{TRANSPORTS.get(name, name)}: {wording.count(count, 'run')}, "
                      f"{spent} tokens, {format_microcents(paid)}, "
                      f"{wording.count(called, 'tool call')}")
    t.say("acme", f"one audit log: {checkpoint.size} events, signed checkpoint verified: "
                  f"{report.ok}; one month to date: {tokens} tokens, "
                  f"{format_microcents(cost)}, {calls} tool calls")
    t.check("acme's Slack, Teams, API and MCP runs are in one audit log, which verifies",
            report.ok and all(by[name][0] > 0 for name in TRANSPORTS)
            and {r.id for r in runs} <= started)
    t.check("acme's one monthly ledger holds exactly its Slack, Teams, API and MCP runs",
            (tokens, cost, calls) == tuple(sum(v[i] for v in by.values()) for i in (1, 2, 3)))
    t.check("globex's audit log verifies", (await rt.audit.verify("globex")).ok)
    posts = s.teams.connector.calls()
    t.check("every call to the Bot Connector carried the bot's own token",
            bool(posts) and all(c.accepted and c.app_id == APP_ID for c in posts))


async def _teams_demo(s: Scenario, t: Transcript) -> None:
    await _seed(s)
    slack = await s.link_workspace("T0ACME", "acme", users=[ALICE])
    await s.command(slack, ALICE.id, "What is the refund policy for rockets?")
    await s.idle()
    posted = [m.text for m in s.slack.messages(slack.channel)]
    t.say("acme", "#general in Acme's Slack workspace, served by the same app:")
    for line in "\n".join(posted).splitlines():
        t.say("acme", clip(f"  | {line}", 154))
    t.check("acme's Slack question is answered by the same app",
            any("30 days" in text for text in posted))
    await _onboard(s, t, "acme", GRACE, ADA, admin_first=False)
    await _onboard(s, t, "globex", LINUS, BOB)
    await _acme_asks(s, t)
    await _globex_halts_and_resumes(s, t)
    await _budget_card(s, t, f"slack:{slack.team_id}:{ALICE.id}")
    await _foreign_token(s, t)
    await api_and_mcp(s, t)
    await _one_log_one_ledger(s, t)


async def run_teams_demo(root: Path) -> Transcript:
    """Run the Teams demo in ``root`` (a scratch folder)."""
    settings = Settings(database_url=f"sqlite:///{root / 'teams-demo.db'}",
                        data_dir=root / "teams-data", model="sandbox", embedder="hashing")
    t = Transcript()
    async with open_scenario(settings, teams=True, mcp=McpSettings(port=0)) as s:
        await _teams_demo(s, t)
    return t
