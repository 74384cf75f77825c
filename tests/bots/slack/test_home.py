"""Tests of ``bots.slack.home``: the App Home published through the real SDK to the stand-in.

Two tenants on different plans, each with a member and an admin who have asked
things; ``acme`` is linked from two workspaces. Every assertion reads the Block Kit
the stand-in received, the way Slack would render it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text, update

from bots import wording
from bots.runtime import Runtime, open_runtime
from bots.slack import home, render
from core.audit.tables import audit_events
from core.budget.ledger import used
from core.errors import RunRefused
from core.prices import format_microcents
from core.runs import recent_runs
from core.settings import Settings
from core.tenants import billing_period, get_tenant, set_status
from installs.links import link, resolve
from installs.principals import slack_principal
from standins.slack.api import SlackStandIn, SlackUser
from tests.support.databases import execute
from tests.support.scripted import ScriptedModels
from tests.support.shown import texts
from tests.support.tenancy import plan, tenant_on

ACME_PLAN = plan("business", capabilities=frozenset({"budget.status"}))
GLOBEX_PLAN = plan("starter", monthly_tokens=200_000, monthly_cost_microcents=500_000_000,
                   monthly_tool_calls=500, run_tokens=1_420, run_tool_calls=3,
                   capabilities=frozenset({"budget.status"}))
"""Room for a short question's two sandbox calls (about 1,370 tokens reserved for the
second), not for LONG's (about 1,450): LONG halts at the token ceiling."""
LONG = ("Please check budget.status and summarise our usage for the team in one short "
        "paragraph with the figures")

ADA, ALAN = SlackUser("UADA"), SlackUser("UALAN", is_admin=True)
GRACE = SlackUser("UGRACE")
GERT, GINA = SlackUser("UGERT"), SlackUser("UGINA", is_admin=True)
WORKSPACES = {"T1": ("acme", "xoxb-t1", (ADA, ALAN)), "T2": ("acme", "xoxb-t2", (GRACE,)),
              "T3": ("globex", "xoxb-t3", (GERT, GINA))}


def shown(view: dict[str, Any]) -> str:
    return "\n".join(texts(view["blocks"]))


def tokens_in(line: str) -> int:
    found = re.search(r"· ([\d,]+) tokens ·", line)
    assert found is not None, line
    return int(found.group(1).replace(",", ""))


def asks_for_audit(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A model that calls ``audit.recent`` whether or not this run may."""
    if not any(isinstance(m, ModelResponse) for m in messages):
        return ModelResponse(parts=[ToolCallPart("audit__recent", {}, tool_call_id="a1")])
    return ModelResponse(parts=[TextPart("I could not read the audit log.")])


@dataclass
class World:
    runtime: Runtime
    slack: SlackStandIn

    async def ask(self, team: str, user: SlackUser, prompt: str) -> str:
        tenant_id = WORKSPACES[team][0]
        grant = await self.runtime.agent.open(
            tenant_id=tenant_id, principal_id=slack_principal(team, user.id),
            extra_roles={"admin" if user.is_admin else "member"})
        return (await self.runtime.agent.start(grant, prompt, model="sandbox")).status

    async def home(self, team: str, user: SlackUser,
                   extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Publish as the app would: tenant from the workspace's link, through its token."""
        found = await self.runtime.db.run(resolve, None, team, False)
        assert found is not None and found.active
        client = AsyncWebClient(token=WORKSPACES[team][1], base_url=self.slack.base_url)
        await home.publish_home(client, self.runtime, user_id=user.id,
                                tenant_id=found.tenant_id,
                                principal_id=slack_principal(team, user.id),
                                is_admin=user.is_admin, extra=extra)
        return self.slack.published_views(user.id)[team]

    async def used(self, tenant_id: str) -> tuple[int, int, int]:
        tenant = await self.runtime.db.run(get_tenant, tenant_id)
        return await self.runtime.db.run(used, tenant_id, billing_period(tenant))


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(database_url=database_url, model="sandbox", data_dir=tmp_path)
    async with open_runtime(settings, migrate=True) as runtime, SlackStandIn() as slack:
        await tenant_on(runtime.db, "acme", ACME_PLAN)
        await tenant_on(runtime.db, "globex", GLOBEX_PLAN)
        for team, (tenant_id, token, users) in WORKSPACES.items():
            slack.add_workspace(team, token, users=users)
            await runtime.db.run(link, None, team, tenant_id, None)
        made = World(runtime, slack)
        assert await made.ask("T1", ADA, "check budget.status") == "completed"
        assert await made.ask("T1", ADA, "check budget.status again") == "completed"
        assert await made.ask("T1", ALAN, "check budget.status for the admins") == "completed"
        assert await made.ask("T3", GERT, "check budget.status") == "completed"
        assert await made.ask("T3", GINA, LONG) == "halted"
        yield made


async def test_a_member_sees_the_month_and_only_their_own_requests(world: World) -> None:
    view = await world.home("T1", ADA)
    text = shown(view)

    tokens, cost, calls = await world.used("acme")
    assert tokens and cost and calls
    assert f"{tokens:,} of {ACME_PLAN.monthly_tokens:,}" in text
    assert f"{format_microcents(cost)} of {format_microcents(ACME_PLAN.monthly_cost_microcents)}" \
        in text
    assert f"{calls:,} of {ACME_PLAN.monthly_tool_calls:,}" in text
    assert "▓" in text or "░" in text
    assert "“check budget.status”" in text and "“check budget.status again”" in text
    assert text.count(":white_check_mark: answered") == 2
    assert "for the admins" not in text, "another person's request"
    for admin_only in (home.PRINCIPALS_HEADING, home.INCIDENTS_HEADING, home.AUDIT_HEADING,
                       home.VERIFY_BUTTON):
        assert admin_only not in text
    assert all(block["type"] != "actions" for block in view["blocks"])


async def test_an_admin_sees_who_spent_what_refusals_halts_and_the_audit_log(
        world: World) -> None:
    world.runtime.agent.models = ScriptedModels(world.runtime.settings, asks_for_audit)
    assert await world.ask("T1", ADA, "what happened lately?") == "completed"
    world.runtime.agent.models = world.runtime.models
    await world.runtime.db.run(set_status, "acme", "suspended")
    with pytest.raises(RunRefused):
        await world.runtime.agent.open(tenant_id="acme", principal_id="slack:T1:UADA")
    await world.runtime.db.run(set_status, "acme", "active")
    checkpoint = await world.runtime.audit.sign_checkpoint("acme")

    view = await world.home("T1", ALAN)
    text = shown(view)

    records = await world.runtime.db.run(recent_runs, "acme", 50)
    for principal in ("slack:T1:UADA", "slack:T1:UALAN"):
        own = [r for r in records if r.principal_id == principal]
        line = next(ln for ln in text.splitlines() if f"`{principal}`" in ln)
        assert f"· {len(own)} request{'s' if len(own) > 1 else ''} ·" in line
        assert format_microcents(sum(r.cost_microcents for r in own)) in line
    assert ":no_entry: tool refused · `slack:T1:UADA` · *audit.recent*" in text
    assert ":no_entry_sign: request refused · `slack:T1:UADA` · account suspended" in text
    assert f"{checkpoint.size:,} events · root `{checkpoint.root[:12]}…`" in text
    [actions] = [block for block in view["blocks"] if block["type"] == "actions"]
    [button] = actions["elements"]
    assert button["action_id"] == render.VERIFY_ACTION
    assert "acme" not in button["value"], "the tenant comes from the installation"


async def test_a_halt_names_its_ceiling_and_whose_request_it_was(world: World) -> None:
    text = shown(await world.home("T3", GINA))

    halt = next(ln for ln in text.splitlines() if ln.startswith(":pause_button: request halted · "))
    assert "`slack:T3:UGINA`" in halt and wording.CEILINGS["tokens"] in halt
    assert f"limit {GLOBEX_PLAN.run_tokens:,}" in halt
    # Nobody signed globex's log: the halted run did as it ended, and the Home shows it.
    report = await world.runtime.audit.verify("globex")
    assert home.NO_CHECKPOINT not in text
    assert f"Latest signed checkpoint: {report.size:,} events" in text


@pytest.mark.parametrize(("team", "admin", "tenant_id"), [("T1", ALAN, "acme"),
                                                          ("T3", GINA, "globex")])
async def test_the_shares_by_person_add_up_to_the_month(
        world: World, team: str, admin: SlackUser, tenant_id: str) -> None:
    text = shown(await world.home(team, admin))

    shares = [ln for ln in text.splitlines() if ln.startswith(f"`slack:{team}:")]
    assert len(shares) == 2
    assert sum(tokens_in(line) for line in shares) == (await world.used(tenant_id))[0]


async def test_another_tenants_figures_and_people_never_appear(world: World) -> None:
    acme, globex = shown(await world.home("T1", ALAN)), shown(await world.home("T3", GINA))
    acme_used, globex_used = await world.used("acme"), await world.used("globex")
    assert acme_used[0] != globex_used[0]

    assert f"{acme_used[0]:,} of" in acme and f"{acme_used[0]:,} of" not in globex
    assert f"{globex_used[0]:,} of" in globex and f"{globex_used[0]:,} of" not in acme
    assert "slack:T3" not in acme and "pause_button" not in acme
    assert "slack:T1" not in globex
    assert "Acme" not in globex and "Globex" not in acme
    assert "`starter`" in globex and "`business`" in acme


async def test_a_second_workspace_of_the_tenant_shows_the_same_month(world: World) -> None:
    first, second = await world.home("T1", ADA), await world.home("T2", GRACE)

    def usage(view: dict[str, Any]) -> str:
        return next(t for t in texts(view["blocks"]) if t.startswith(home.USAGE_HEADING))

    assert usage(second) == usage(first)
    assert home.NO_RUNS in shown(second)
    assert world.slack.calls("views.publish", token="xoxb-t2")


async def test_verify_reports_an_intact_log_below_the_button(world: World) -> None:
    await world.runtime.audit.sign_checkpoint("acme")
    report = await world.runtime.audit.verify("acme")

    extra = await home.verify_view_section(world.runtime, "acme")
    view = await world.home("T1", ALAN, extra=extra)

    assert view["blocks"][-2:] == extra
    assert view["blocks"][-3]["type"] == "actions"
    assert extra[0]["text"]["text"] == home.VERIFIED.format(
        size=report.size, checkpoints=f"{report.checkpoints_checked} signed checkpoints",
        root=report.root[:12] + "…")
    assert report.ok and report.size > 0
    assert report.checkpoints_checked > 1, "each of acme's runs signed as it ended"


async def test_verify_names_the_first_changed_event(world: World) -> None:
    db = world.runtime.db
    unguard = ("DROP TRIGGER audit_events_no_update" if db.is_sqlite
               else "DROP TRIGGER audit_events_append_only ON audit_events")
    await execute(db, text(unguard),  # as an owner of the database could
                  update(audit_events)
                  .where(audit_events.c.tenant_id == "globex", audit_events.c.seq == 2)
                  .values(fields='{"tampered":true}'))

    [result, _when] = await home.verify_view_section(world.runtime, "globex")

    assert result["text"]["text"].startswith(":rotating_light: *Audit log does not verify* "
                                             "from event 2:")
    [intact, _] = await home.verify_view_section(world.runtime, "acme")
    assert intact["text"]["text"].startswith(":white_check_mark:")


async def test_long_prompts_and_names_stay_within_slacks_limits(world: World) -> None:
    assert await world.ask("T1", ADA, "check budget.status <b>&" + "x" * 5000) == "completed"

    view = await home.home_view(world.runtime, tenant_id="acme",
                                principal_id="slack:T1:UADA", is_admin=True)

    assert len(view["blocks"]) <= home.MAX_BLOCKS
    assert all(len(t) <= home.MAX_TEXT for t in texts(view["blocks"]))
    assert "“check budget.status &lt;b&gt;&amp;xxx" in shown(view)
    assert "x" * (home.PROMPT_CHARS + 1) not in shown(view)


def test_fit_cuts_the_body_marks_the_cut_and_keeps_the_tail() -> None:
    body = [{"type": "divider"}] * 150
    tail = [{"type": "section", "text": {"type": "mrkdwn", "text": "verified"}}]

    fitted = home.fit(body, tail)

    assert len(fitted) == home.MAX_BLOCKS
    assert fitted[-1] == tail[0]
    assert fitted[-2]["elements"][0]["text"] == home.LEFT_OUT
    assert home.fit(body[:3], tail) == [*body[:3], *tail]


def test_sections_split_long_lists_at_slacks_text_limit() -> None:
    lines = [f"line {i} " + "y" * 400 for i in range(20)]

    blocks = home._sections("*Heading*", lines, "none")

    assert len(blocks) > 1
    assert all(len(b["text"]["text"]) <= home.MAX_TEXT for b in blocks)
    assert "\n".join(b["text"]["text"] for b in blocks).split("\n") == ["*Heading*", *lines]
    assert home._sections("*H*", [], "none")[0]["text"]["text"] == "*H*\nnone"


@pytest.mark.parametrize(("used", "allowance", "expected"), [
    (0, 100, "`░░░░░░░░░░` 0%"),
    (42, 100, "`▓▓▓▓░░░░░░` 42%"),
    (1, 1000, "`░░░░░░░░░░` &lt;1%"),
    (100, 100, "`▓▓▓▓▓▓▓▓▓▓` 100%"),
    (130, 100, "`▓▓▓▓▓▓▓▓▓▓` 130%"),
    (5, 0, "`░░░░░░░░░░` no allowance"),
])
def test_the_gauge(used: int, allowance: int, expected: str) -> None:
    assert home.gauge(used, allowance) == expected
