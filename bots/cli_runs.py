"""``tenantry run`` and ``tenantry runs``: start a run, show it, resume it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from bots.cli_support import (
    LimitedText,
    column_length,
    echo_json,
    json_option,
    root_settings,
    run_async,
)
from bots.runtime import open_runtime
from core.agent import RunOutcome
from core.authz import list_grants
from core.context import PrincipalKind
from core.db.schema import runs as runs_table
from core.prices import format_microcents
from core.runs import find_run_tenant, get_run
from core.tenants import Tenant, get_tenant

_USAGE_SHAPE = ('{"input_tokens": int, "output_tokens": int, "cache_read_tokens": int, '
                '"cache_write_tokens": int, "tokens": int, "tool_calls": int, '
                '"cost_microcents": int, "retried_tokens": int, "retried_tool_calls": int, '
                '"retried_cost_microcents": int}')
OUTCOME_SHAPE = ('{"run_id": str, "tenant_id": str, "status": str, "model": str, '
                 '"answer": str|null, "halt": {"ceiling": str, "limit": int, "used": int}|null, '
                 '"error": str|null, "refused_tools": [{"capability": str, "reason": str}], '
                 f'"usage": {_USAGE_SHAPE}}}')
RUN_SHAPE = ('{"id": str, "tenant_id": str, "principal_id": str, "principal_kind": str, '
             '"model": str, "status": str, "answer": str|null, "input_tokens": int, '
             '"output_tokens": int, "tool_calls": int, "cost_microcents": int, '
             '"attempts": int, "created_at": ISO 8601, "detail": {...}}')
_PRINCIPAL = LimitedText(column_length(runs_table.c.principal_id))


def outcome_json(outcome: RunOutcome) -> dict[str, Any]:
    """A run's outcome as ``--json`` prints it (see ``OUTCOME_SHAPE``)."""
    return {"run_id": outcome.run_id, "tenant_id": outcome.tenant_id,
            "status": outcome.status, "model": outcome.model, "answer": outcome.answer,
            "halt": outcome.halt, "error": outcome.error,
            "refused_tools": [{"capability": c, "reason": r} for c, r in outcome.refused_tools],
            "usage": asdict(outcome.usage)}


def refusal_line(capability: str, reason: str, principal: str, tenant: Tenant,
                 roles: list[str]) -> str:
    """Why a run was refused a capability, in words, with the command that fixes it."""
    if reason == "forbidden" and not roles:
        return (f"{principal} has no role in {tenant.id}: grant one with `tenantry roles "
                f"grant --tenant {tenant.id} {principal} member` ({capability} was refused)")
    if reason == "forbidden":
        return (f"{capability} is not allowed to {principal}'s roles in {tenant.id} "
                f"({', '.join(roles)}): `tenantry roles --help` lists what each role allows")
    if reason == "not_licensed":
        return (f"{capability} is not in plan {tenant.plan_id}: add it with `tenantry plans "
                f"set {tenant.plan_id} --capability {capability}` (listing the others too)")
    return f"{capability} was refused: {reason.replace('_', ' ')}"


def print_outcome(outcome: RunOutcome, as_json: bool = False,
                  refusals: list[str] | None = None) -> None:
    """Print a run's outcome: its answer, halt or error, refusals, and what it used."""
    if as_json:
        echo_json(outcome_json(outcome))
        return
    click.echo(f"run {outcome.run_id} ({outcome.tenant_id}, model {outcome.model}): "
               f"{outcome.status}")
    if outcome.answer:
        click.echo(outcome.answer)
    if outcome.halt:
        h = outcome.halt
        click.echo(f"halted: ceiling {h['ceiling']} (limit {h['limit']}, used {h['used']}); "
                   f"resume with: tenantry runs resume {outcome.run_id}")
    if outcome.error:
        click.echo(f"error: {outcome.error}")
    for line in refusals or [f"{c} was refused: {r.replace('_', ' ')}"
                             for c, r in outcome.refused_tools]:
        click.echo(f"refused: {line}")
    u = outcome.usage
    cached = (f" ({u.cache_read_tokens} read from / {u.cache_write_tokens} written to the "
              "prompt cache)" if u.cache_read_tokens or u.cache_write_tokens else "")
    click.echo(f"usage: {u.input_tokens} in{cached} / {u.output_tokens} out tokens, "
               f"{u.tool_calls} tool calls, {format_microcents(u.cost_microcents)}"
               + (f" (retried work: {u.retried_tokens} tokens, "
                  f"{format_microcents(u.retried_cost_microcents)})"
                  if u.retried_tokens or u.retried_tool_calls else ""))


@click.command("run")
@click.option("--tenant", "tenant_id", required=True, help="The tenant the run is for.")
@click.option("--principal", "principal_id", required=True, type=_PRINCIPAL,
              help="Who the run acts on behalf of.")
@click.option("--principal-kind", type=click.Choice(["user", "service", "agent"]),
              default="service", show_default=True, help="What kind of principal that is.")
@click.option("--model", default=None,
              help="Model id; 'sandbox' is the offline deterministic model.")
@click.option("--role", "roles_", multiple=True,
              type=click.Choice(["owner", "admin", "member", "guest"]),
              help="A role the operator vouches for in this run only (repeatable); "
                   "otherwise the principal's granted roles apply.")
@json_option(OUTCOME_SHAPE)
@click.argument("prompt")
@run_async
async def run_command(tenant_id: str, principal_id: str, principal_kind: PrincipalKind,
                      model: str | None, roles_: tuple[str, ...], as_json: bool,
                      prompt: str) -> None:
    """Run one agent run and print its outcome, usage and cost.

    Example: tenantry run --tenant acme --principal ops --model sandbox "How much of
    our budget is left?"
    """
    async with open_runtime(root_settings()) as rt:
        rt.models.check(model or rt.settings.model)
        grant = await rt.agent.open(tenant_id=tenant_id, principal_id=principal_id,
                                    principal_kind=principal_kind, initiator="user",
                                    extra_roles=roles_)
        outcome = await rt.agent.start(grant, prompt, model=model)
        tenant = await rt.db.run(get_tenant, tenant_id)
        held = [role for who, role in await rt.db.run(list_grants, tenant_id)
                if who == principal_id] + list(roles_)
    print_outcome(outcome, as_json, [refusal_line(c, r, principal_id, tenant, held)
                                     for c, r in outcome.refused_tools])


@click.group()
def runs() -> None:
    """Inspect and resume runs.

    Example: tenantry runs show 0b6f6d1e-3c55-4bb4-9d53-1f1f6e0f2a7c --json
    """


@runs.command("resume")
@click.argument("run_id")
@json_option(OUTCOME_SHAPE)
@run_async
async def runs_resume(run_id: str, as_json: bool) -> None:
    """Resume a halted or interrupted run from its checkpoint, with a fresh budget.

    Example: tenantry runs resume 0b6f6d1e-3c55-4bb4-9d53-1f1f6e0f2a7c
    """
    async with open_runtime(root_settings()) as rt:
        tenant_id = await rt.db.run(find_run_tenant, run_id)
        grant = await rt.agent.reopen(tenant_id, run_id)
        print_outcome(await rt.agent.resume(grant), as_json)


@runs.command("show")
@click.argument("run_id")
@json_option(RUN_SHAPE)
@run_async
async def runs_show(run_id: str, as_json: bool) -> None:
    """Show a run's status, outcome and usage.

    Example: tenantry runs show 0b6f6d1e-3c55-4bb4-9d53-1f1f6e0f2a7c
    """
    async with open_runtime(root_settings()) as rt:
        r = await rt.db.run(get_run, await rt.db.run(find_run_tenant, run_id), run_id)
    if as_json:
        echo_json({"id": r.id, "tenant_id": r.tenant_id, "principal_id": r.principal_id,
                   "principal_kind": r.principal_kind, "model": r.model, "status": r.status,
                   "answer": r.answer, "input_tokens": r.input_tokens,
                   "output_tokens": r.output_tokens, "tool_calls": r.tool_calls,
                   "cost_microcents": r.cost_microcents, "attempts": r.attempts,
                   "created_at": r.created_at, "detail": r.detail})
        return
    click.echo(f"run {r.id} ({r.tenant_id}, {r.principal_id}, model {r.model}): {r.status}")
    click.echo(f"  {r.input_tokens} in / {r.output_tokens} out tokens, {r.tool_calls} tool "
               f"calls, {format_microcents(r.cost_microcents)}, attempts {r.attempts}")
    if r.detail:
        click.echo(f"  {r.detail}")
