"""The offline demo: the whole agent core on the embedded defaults, no credentials.

Two tenants on different plans run prompts with the sandbox model; one run hits its
per-run token ceiling, halts, and is resumed with a fresh allocation. Every figure
printed comes from the ledgers; the isolation checks at the end decide the exit code.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import click

from bots.runtime import Runtime, open_runtime
from core.agent import RunOutcome
from core.authz import grant as grant_role
from core.budget.ledger import used
from core.errors import RunRefused
from core.logs import configure
from core.prices import format_microcents
from core.settings import Settings
from core.tenants import Plan, billing_period, create_plan, create_tenant, get_tenant, set_status

PLANS = (
    Plan(
        id="business",
        monthly_tokens=5_000_000, monthly_cost_microcents=50 * 100 * 1_000_000,
        monthly_tool_calls=10_000, run_tokens=100_000, run_tool_calls=10,
        run_walltime_ms=60_000, run_cost_microcents=100 * 1_000_000,
        capabilities=frozenset({"budget.status", "knowledge.search", "audit.recent"}),
    ),
    Plan(
        id="starter",
        monthly_tokens=200_000, monthly_cost_microcents=5 * 100 * 1_000_000,
        monthly_tool_calls=500, run_tokens=20_000, run_tool_calls=1,
        run_walltime_ms=30_000, run_cost_microcents=20 * 1_000_000,
        capabilities=frozenset({"budget.status", "knowledge.search"}),
    ),
)

DOCUMENTS = {
    "acme": ("acme-handbook.md",
             "Acme's refund policy: customers may return rockets within 30 days.\n\n"
             "Acme's support line is open weekdays from 8 to 18 Pacific time."),
    "globex": ("globex-runbook.md",
               "Globex deploys the doomsday device only on Tuesdays after the change review.\n\n"
               "Globex on-call engineers rotate every Monday at noon Berlin time."),
}


@dataclass
class Transcript:
    """What the demo printed per tenant, and the checks it made."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def say(self, tenant: str, text: str) -> None:
        self.lines.setdefault(tenant, []).append(text)
        click.echo(f"[{tenant}] {text}")

    def check(self, name: str, ok: bool) -> None:
        self.checks.append((name, ok))
        click.echo(f"  check: {name}: {'ok' if ok else 'FAILED'}")


def clip(line: str, width: int) -> str:
    """``line`` cut to ``width`` characters, with "…" where it was cut."""
    return line if len(line) <= width else line[:width - 1] + "…"


def _describe(outcome: RunOutcome) -> str:
    u = outcome.usage
    text = (f"run {outcome.run_id}: {outcome.status}; {u.input_tokens} in / "
            f"{u.output_tokens} out tokens, {u.tool_calls} tool calls, "
            f"{format_microcents(u.cost_microcents)}")
    if outcome.refused_tools:
        text += "; refused " + ", ".join(f"{capability} ({reason})"
                                         for capability, reason in outcome.refused_tools)
    if outcome.halt:
        h = outcome.halt
        text += f"; halted at {h['ceiling']} (limit {h['limit']}, used {h['used']})"
    return text


async def _ask(rt: Runtime, t: Transcript, tenant: str, principal: str, prompt: str,
               ) -> RunOutcome:
    grant = await rt.agent.open(tenant_id=tenant, principal_id=principal)
    t.say(tenant, f"{principal} asks: {prompt}")
    outcome = await rt.agent.start(grant, prompt, model="sandbox")
    if outcome.answer:
        for line in outcome.answer.splitlines():
            t.say(tenant, clip(f"  > {line}", 160))
    t.say(tenant, "  " + _describe(outcome))
    return outcome


async def _demo(rt: Runtime) -> Transcript:
    t = Transcript()
    await _seed(rt, t)
    acme = await _acme_stays_in_its_lane(rt, t)
    globex = await _globex_halts_and_resumes(rt, t)
    await _suspension_refuses_runs(rt, t)
    await _audit_and_bill(rt, t, {"acme": acme, "globex": globex})
    return t


async def _seed(rt: Runtime, t: Transcript) -> None:
    for plan in PLANS:
        await rt.db.run(create_plan, plan)
    await rt.db.run(create_tenant, tenant_id="acme", name="Acme Corp", plan_id="business")
    await rt.db.run(create_tenant, tenant_id="globex", name="Globex", plan_id="starter",
                    time_zone="Europe/Berlin")
    await rt.db.run(grant_role, "acme", "alice", "admin")
    await rt.db.run(grant_role, "globex", "bob", "member")
    for tenant_id, (source, text) in DOCUMENTS.items():
        grant = await rt.agent.open(tenant_id=tenant_id, principal_id="operator",
                                    principal_kind="service")
        chunks = await rt.knowledge.add(grant.ctx, source, text)
        t.say(tenant_id, f"ingested {source}: {chunks} chunks")


async def _acme_stays_in_its_lane(rt: Runtime, t: Transcript) -> list[RunOutcome]:
    acme = await _ask(rt, t, "acme", "alice", "How much have we used? Check budget.status")
    t.check("acme run completed", acme.status == "completed")
    grounded = await _ask(rt, t, "acme", "alice", "What is the refund policy for rockets?")
    t.check("acme's answer is grounded in acme's own handbook",
            "30 days" in (grounded.answer or "") and "Globex" not in (grounded.answer or ""))
    probe = await _ask(rt, t, "acme", "alice",
                       "Show me the Globex runbook about the doomsday device?")
    t.check("acme cannot find globex's documents",
            "doomsday" not in (probe.answer or "").lower().replace(
                "show me the globex runbook about the doomsday device", ""))
    return [acme, grounded, probe]


async def _globex_halts_and_resumes(rt: Runtime, t: Transcript) -> list[RunOutcome]:
    refused = await _ask(rt, t, "globex", "bob", "Please list audit.recent events")
    t.check("an unlicensed tool is refused and the run still answers",
            refused.status == "completed" and ("audit.recent", "not_licensed")
            in refused.refused_tools)
    globex = await _ask(rt, t, "globex", "bob",
                        "Check budget.status, and what does the runbook say about on-call?")
    t.check("globex run halted at its per-run tool-call ceiling",
            globex.status == "halted" and (globex.halt or {}).get("ceiling") == "tool_calls")
    grant = await rt.agent.open(tenant_id="globex", principal_id="bob",
                                run_id=globex.run_id)
    resumed = await rt.agent.resume(grant)
    t.say("globex", "  resumed with a fresh allocation: " + _describe(resumed))
    for line in (resumed.answer or "").splitlines():
        t.say("globex", clip(f"  > {line}", 160))
    t.check("globex run completed after resume", resumed.status == "completed")
    t.check("resume repeated no tool call", resumed.usage.tool_calls == 2)
    return [resumed, refused]


async def _suspension_refuses_runs(rt: Runtime, t: Transcript) -> None:
    await rt.db.run(set_status, "globex", "suspended")
    try:
        await rt.agent.open(tenant_id="globex", principal_id="bob")
        t.check("suspended tenant refused", False)
    except RunRefused as exc:
        t.say("globex", f"suspended: a new run is refused: {exc}")
        t.check("suspended tenant refused", exc.reason == "tenant_suspended")
    await rt.db.run(set_status, "globex", "active")


async def _audit_and_bill(rt: Runtime, t: Transcript,
                          outcomes: dict[str, list[RunOutcome]]) -> None:
    for tenant_id in ("acme", "globex"):
        checkpoint = await rt.audit.sign_checkpoint(tenant_id)
        report = await rt.audit.verify(tenant_id)
        t.say(tenant_id, f"audit log: {checkpoint.size} events, signed checkpoint verified: "
                         f"{report.ok}")
        t.check(f"{tenant_id}'s audit log verifies", report.ok)
    for tenant_id, runs in outcomes.items():
        tenant = await rt.db.run(get_tenant, tenant_id)
        tokens, cost, calls = await rt.db.run(used, tenant_id, billing_period(tenant))
        expected = sum(o.usage.tokens + o.usage.retried_tokens for o in runs)
        t.say(tenant_id, f"month to date: {tokens} tokens, {format_microcents(cost)}, "
                         f"{calls} tool calls")
        t.check(f"{tenant_id}'s month holds exactly its own runs", tokens == expected)


async def run_demo(database_url: str) -> Transcript:
    """Run the demo against a fresh database at ``database_url``."""
    settings = Settings(database_url=database_url, model="sandbox",
                        data_dir=Path(database_url.split(":///", 1)[1]).parent / "data")
    async with open_runtime(settings, migrate=True) as rt:
        return await _demo(rt)


def main() -> int:
    """Run the demo in a scratch SQLite file; exit status 1 if any check failed."""
    configure("WARNING")
    click.echo("Tenantry offline demo (sandbox model: deterministic, no LLM, no network)\n")
    from bots.demo_slack import run_slack_demo
    from bots.demo_teams import run_teams_demo

    with tempfile.TemporaryDirectory(prefix="tenantry-demo-") as scratch:
        click.echo("== The agent core, called directly\n")
        transcript = asyncio.run(run_demo(f"sqlite:///{Path(scratch) / 'demo.db'}"))
        click.echo("\n== The same through Slack: the real server, signed requests, "
                   "a local stand-in for Slack's Web API\n")
        through_slack = asyncio.run(run_slack_demo(Path(scratch)))
        click.echo("\n== And through Microsoft Teams: one app serving Slack and Teams, "
                   "a local token issuer and Bot Connector\n")
        through_teams = asyncio.run(run_teams_demo(Path(scratch)))
    for through in (through_slack, through_teams):
        transcript.checks.extend(through.checks)
        for tenant, lines in through.lines.items():
            transcript.lines.setdefault(tenant, []).extend(lines)
    failed = [name for name, ok in transcript.checks if not ok]
    click.echo("\nSummary")
    for tenant, lines in transcript.lines.items():
        click.echo(f"  {tenant}: {len(lines)} transcript lines")
    click.echo(f"  checks: {len(transcript.checks) - len(failed)} passed, {len(failed)} failed")
    for name in failed:
        click.echo(f"  FAILED: {name}")
    return 1 if failed else 0
