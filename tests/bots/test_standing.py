"""Tests of ``bots.standing``: one tenant's figures, the same ones the Slack App Home shows.

Two tenants on different plans; in ``acme`` a member and an admin have asked things,
and in ``globex`` a request halted at its token ceiling. Each figure is checked
against the ledger, the runs and the audit log, and against the App Home's text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bots import wording
from bots.runtime import Runtime, open_runtime
from bots.slack import home
from bots.standing import TenantStanding, tenant_standing
from bots.teams import render
from core.budget.ledger import used
from core.errors import RunRefused
from core.prices import format_microcents
from core.runs import recent_runs
from core.settings import Settings
from core.tenants import billing_period, get_tenant, set_status
from tests.support.shown import texts
from tests.support.tenancy import plan, tenant_on

ACME_PLAN = plan("business", capabilities=frozenset({"budget.status"}))
GLOBEX_PLAN = plan("starter", run_tokens=1_420, capabilities=frozenset({"budget.status"}))
"""Room for a short question's two sandbox calls, not for LONG's: LONG halts."""
LONG = ("Please check budget.status and summarise our usage for the team in one short "
        "paragraph with the figures")
ADA, ALAN, GINA = "slack:T1:UADA", "slack:T1:UALAN", "slack:T3:UGINA"


async def ask(runtime: Runtime, tenant_id: str, principal_id: str, prompt: str) -> str:
    grant = await runtime.agent.open(tenant_id=tenant_id, principal_id=principal_id,
                                     extra_roles={"member"})
    return (await runtime.agent.start(grant, prompt, model="sandbox")).status


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings, migrate=True) as opened:
        await tenant_on(opened.db, "acme", ACME_PLAN)
        await tenant_on(opened.db, "globex", GLOBEX_PLAN)
        assert await ask(opened, "acme", ADA, "check budget.status") == "completed"
        assert await ask(opened, "acme", ADA, "check budget.status again") == "completed"
        assert await ask(opened, "acme", ALAN, "check budget.status for the admins") == "completed"
        assert await ask(opened, "globex", GINA, LONG) == "halted"
        yield opened


async def slack_home(runtime: Runtime, tenant_id: str, principal_id: str) -> str:
    view = await home.home_view(runtime, tenant_id=tenant_id, principal_id=principal_id,
                                is_admin=True)
    return "\n".join(texts(view["blocks"]))


async def test_the_month_is_the_ledgers_and_reads_as_the_app_home_shows_it(
        runtime: Runtime) -> None:
    held = await tenant_standing(runtime, tenant_id="acme", principal_id=ADA, is_admin=True)
    shown = await slack_home(runtime, "acme", ADA)

    tenant = await runtime.db.run(get_tenant, "acme")
    tokens, cost, calls = await runtime.db.run(used, "acme", billing_period(tenant))
    assert tokens and cost and calls
    assert [(a.name, a.used, a.allowance) for a in held.usage] == [
        ("tokens", tokens, ACME_PLAN.monthly_tokens),
        ("cost_microcents", cost, ACME_PLAN.monthly_cost_microcents),
        ("tool_calls", calls, ACME_PLAN.monthly_tool_calls)]
    for figure in held.usage:
        assert (f"{wording.amount(figure.name, figure.used)} of "
                f"{wording.amount(figure.name, figure.allowance)}") in shown
    assert (held.tenant_name, held.plan_id, held.period, held.suspended) == (
        "Acme", "business", billing_period(tenant), False)
    assert f"`business` · billing month {held.period} ({held.time_zone})" in shown


async def test_recent_requests_are_the_persons_own_as_the_app_home_lists_them(
        runtime: Runtime) -> None:
    held = await tenant_standing(runtime, tenant_id="acme", principal_id=ADA, is_admin=False)
    shown = await slack_home(runtime, "acme", ADA)

    own = [r for r in await runtime.db.run(recent_runs, "acme", 50) if r.principal_id == ADA]
    assert [(r.run_id, r.status, r.cost_microcents, r.prompt) for r in held.recent] == [
        (r.id, r.status, r.cost_microcents, r.prompt) for r in own]
    assert all(r.created_at.tzinfo is not None for r in held.recent)
    for run in held.recent:
        assert f"{format_microcents(run.cost_microcents)} · " in shown
        assert f"“{run.prompt}”" in shown
    assert held.admin is None, "a member sees no admin figures"


async def test_the_shares_are_the_app_homes_and_add_up_to_the_month(runtime: Runtime) -> None:
    held = await tenant_standing(runtime, tenant_id="acme", principal_id=ALAN, is_admin=True)
    shown = await slack_home(runtime, "acme", ALAN)

    assert held.admin is not None
    shares = held.admin.shares
    assert {s.principal_id for s in shares} == {ADA, ALAN} and not held.admin.more_shares
    assert sum(s.tokens for s in shares) == held.usage[0].used
    assert sum(s.cost_microcents for s in shares) == held.usage[1].used
    assert sum(s.tool_calls for s in shares) == held.usage[2].used
    assert {s.principal_id: s.runs for s in shares} == {ADA: 2, ALAN: 1}
    for share in shares:
        figures = wording.share_figures(share.runs, share.tokens, share.cost_microcents,
                                        share.tool_calls)
        assert f"`{share.principal_id}` · {figures}" in shown


async def test_a_halt_and_a_refusal_are_incidents_with_their_figures(runtime: Runtime) -> None:
    await runtime.db.run(set_status, "globex", "suspended")
    with pytest.raises(RunRefused):
        await runtime.agent.open(tenant_id="globex", principal_id=GINA)
    checkpoint = await runtime.audit.latest_checkpoint("globex")

    held = await tenant_standing(runtime, tenant_id="globex", principal_id=GINA, is_admin=True)
    shown = await slack_home(runtime, "globex", GINA)

    assert held.suspended and home.SUSPENDED in shown
    assert held.admin is not None and checkpoint is not None
    refused, halted = held.admin.incidents
    assert (refused.event, refused.principal_id, refused.reason) == (
        "run.refused", GINA, "tenant_suspended")
    assert (halted.event, halted.principal_id, halted.ceiling, halted.limit) == (
        "run.halted", GINA, "tokens", GLOBEX_PLAN.run_tokens)
    assert halted.time <= refused.time
    assert wording.reached(halted.ceiling, halted.limit, halted.used).described in shown
    assert held.admin.checkpoint is not None
    assert (held.admin.checkpoint.size, held.admin.checkpoint.root) == (
        checkpoint.size, checkpoint.root)
    assert f"{checkpoint.size:,} events · root `{checkpoint.root[:12]}…`" in shown


async def test_another_tenants_figures_and_people_never_appear(runtime: Runtime) -> None:
    acme = await tenant_standing(runtime, tenant_id="acme", principal_id=GINA, is_admin=True)
    globex = await tenant_standing(runtime, tenant_id="globex", principal_id=ADA, is_admin=True)

    def people(held: TenantStanding) -> set[str | None]:
        assert held.admin is not None
        return ({s.principal_id for s in held.admin.shares}
                | {i.principal_id for i in held.admin.incidents})

    assert acme.recent == () and globex.recent == (), "the person asked in the other tenant"
    assert people(acme) == {ADA, ALAN} and people(globex) == {GINA}
    assert acme.usage[0].used != globex.usage[0].used


@pytest.mark.parametrize(("tenant_id", "admin"), [("acme", ALAN), ("globex", GINA)])
async def test_teams_shows_the_figures_the_app_home_shows(
        runtime: Runtime, tenant_id: str, admin: str) -> None:
    held = await tenant_standing(runtime, tenant_id=tenant_id, principal_id=admin,
                                 is_admin=True)
    slack = await slack_home(runtime, tenant_id, admin)
    teams = json.dumps(render.standing_card(held), ensure_ascii=False)

    assert held.admin is not None and held.admin.checkpoint is not None
    figures = [f"{wording.amount(a.name, a.used)} of {wording.amount(a.name, a.allowance)}"
               for a in held.usage]
    figures += [wording.share_figures(s.runs, s.tokens, s.cost_microcents, s.tool_calls)
                for s in held.admin.shares]
    figures += [wording.reached(i.ceiling, i.limit, i.used).described
                for i in held.admin.incidents if i.ceiling]
    figures += [f"“{wording.excerpt(run.prompt, wording.PROMPT_CHARS)}”" for run in held.recent]
    figures += [f"{held.admin.checkpoint.size:,} events", held.admin.checkpoint.root[:12]]
    for figure in figures:
        assert figure in slack and figure in teams
