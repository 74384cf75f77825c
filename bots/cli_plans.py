"""``tenantry plans``: monthly allowances, per-run ceilings and capabilities.

Each limit is checked where it is given: against the range of its database column
(a 32-bit or a 64-bit integer), and a per-run ceiling above the monthly allowance it
can never reach is warned about.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from sqlalchemy import BigInteger

from bots.cli_support import echo_json, json_option, operator, root_settings, run_async
from bots.runtime import Runtime, open_runtime
from core.admin import Admin
from core.db.schema import plans as plans_table
from core.errors import InvalidInput
from core.prices import format_microcents
from core.tenants import (
    DEFAULT_RETENTION_DAYS,
    PLAN_LIMITS,
    Plan,
    create_plan,
    get_plan,
    list_plans,
)

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_LIMIT_HELP = {
    "monthly_tokens": "Tokens a tenant may use per month.",
    "monthly_cost_microcents": "Model and tool cost per month, in microcents (1e-6 cent).",
    "monthly_tool_calls": "Tool calls per month.",
    "run_tokens": "Token ceiling of one run.",
    "run_tool_calls": "Tool-call ceiling of one run.",
    "run_walltime_ms": "Walltime ceiling of one run, in milliseconds.",
    "run_cost_microcents": "Cost ceiling of one run, in microcents.",
}
_RETENTION_HELP = "Days run transcripts and conversation turns are kept."
_PER_RUN = {"run_tokens": "monthly_tokens", "run_tool_calls": "monthly_tool_calls",
            "run_cost_microcents": "monthly_cost_microcents"}
PLAN_SHAPE = ('{"id": str, "monthly_tokens": int, "monthly_cost_microcents": int, '
              '"monthly_tool_calls": int, "run_tokens": int, "run_tool_calls": int, '
              '"run_walltime_ms": int, "run_cost_microcents": int, "capabilities": [str], '
              '"retention_days": int}')


def column_max(name: str) -> int:
    """The largest value the plans table's column ``name`` holds on both databases."""
    return INT64_MAX if isinstance(plans_table.c[name].type, BigInteger) else INT32_MAX


def plan_json(plan: Plan) -> dict[str, Any]:
    """A plan as ``--json`` prints it (see ``PLAN_SHAPE``)."""
    return {"id": plan.id, **{name: getattr(plan, name) for name in PLAN_LIMITS},
            "capabilities": sorted(plan.capabilities), "retention_days": plan.retention_days}


def _plan_lines(plan: Plan) -> list[str]:
    return [
        f"plan {plan.id}",
        f"  monthly: {plan.monthly_tokens} tokens, "
        f"{format_microcents(plan.monthly_cost_microcents)}, {plan.monthly_tool_calls} tool calls",
        f"  per run: {plan.run_tokens} tokens, {plan.run_tool_calls} tool calls, "
        f"{plan.run_walltime_ms} ms, {format_microcents(plan.run_cost_microcents)}",
        f"  capabilities: {', '.join(sorted(plan.capabilities)) or '(none)'}",
        f"  keeps run transcripts and conversations {plan.retention_days} days",
    ]


def _print(found: list[Plan], as_json: bool, one: bool = True) -> None:
    if as_json:
        echo_json(plan_json(found[0]) if one else [plan_json(p) for p in found])
        return
    for plan in found:
        click.echo("\n".join(_plan_lines(plan)))


def _warn_unreachable(plan: Plan) -> None:
    """Say on stderr which per-run ceiling the monthly allowance makes unreachable."""
    for run_limit, monthly in _PER_RUN.items():
        if getattr(plan, run_limit) > getattr(plan, monthly):
            click.echo(f"warning: plan {plan.id}: {run_limit} {getattr(plan, run_limit)} is "
                       f"above {monthly} {getattr(plan, monthly)}; a run stops at the "
                       "monthly allowance first", err=True)


def _check_capabilities(rt: Runtime, capabilities: tuple[str, ...]) -> None:
    known = rt.registry.names()
    unknown = sorted(set(capabilities) - set(known))
    if unknown:
        raise InvalidInput(f"no capability provides {', '.join(unknown)}; known: "
                           f"{', '.join(sorted(known))}")


def _limit_options(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(PLAN_LIMITS):
            func = click.option(
                "--" + name.replace("_", "-"), name,
                type=click.IntRange(min=0, max=column_max(name)),
                required=required, help=_LIMIT_HELP[name],
            )(func)
        return func

    return decorate


_RETENTION = click.IntRange(min=1, max=INT32_MAX)


@click.group()
def plans() -> None:
    """Create and change plans: monthly allowances, per-run ceilings, capabilities.

    Example: tenantry plans list --json
    """


@plans.command("create")
@click.argument("plan_id")
@_limit_options(required=True)
@click.option("--capability", "capabilities", multiple=True,
              help="A licensed capability (repeatable), e.g. knowledge.search.")
@click.option("--retention-days", type=_RETENTION, default=DEFAULT_RETENTION_DAYS,
              show_default=True, help=_RETENTION_HELP)
@json_option(PLAN_SHAPE)
@run_async
async def plans_create(plan_id: str, capabilities: tuple[str, ...], retention_days: int,
                       as_json: bool, **limits: int) -> None:
    """Create plan PLAN_ID.

    Example: tenantry plans create team --monthly-tokens 1000000
    --monthly-cost-microcents 500000000 --monthly-tool-calls 1000 --run-tokens 20000
    --run-tool-calls 10 --run-walltime-ms 60000 --run-cost-microcents 5000000
    --capability budget.status
    """
    async with open_runtime(root_settings()) as rt:
        _check_capabilities(rt, capabilities)
        plan = await rt.db.run(create_plan, Plan(
            id=plan_id, capabilities=frozenset(capabilities), retention_days=retention_days,
            **limits))
    _warn_unreachable(plan)
    _print([plan], as_json)


@plans.command("list")
@json_option(f"[{PLAN_SHAPE}]")
@run_async
async def plans_list(as_json: bool) -> None:
    """List every plan.

    Example: tenantry plans list --json
    """
    async with open_runtime(root_settings()) as rt:
        found = await rt.db.run(list_plans)
    _print(found, as_json, one=False)


@plans.command("show")
@click.argument("plan_id")
@json_option(PLAN_SHAPE)
@run_async
async def plans_show(plan_id: str, as_json: bool) -> None:
    """Show plan PLAN_ID.

    Example: tenantry plans show team
    """
    async with open_runtime(root_settings()) as rt:
        plan = await rt.db.run(get_plan, plan_id)
    _print([plan], as_json)


@plans.command("set")
@click.argument("plan_id")
@_limit_options(required=False)
@click.option("--capability", "capabilities", multiple=True,
              help="Replace the licensed capabilities with these (repeatable).")
@click.option("--retention-days", type=_RETENTION, default=None, help=_RETENTION_HELP)
@json_option(PLAN_SHAPE)
@run_async
async def plans_set(plan_id: str, capabilities: tuple[str, ...], retention_days: int | None,
                    as_json: bool, **limits: int | None) -> None:
    """Change limits, capabilities or retention of plan PLAN_ID; runs started later see
    the change.

    Example: tenantry plans set team --run-tokens 40000 --capability knowledge.search
    """
    async with open_runtime(root_settings()) as rt:
        if capabilities:
            _check_capabilities(rt, capabilities)
        plan = await Admin(rt.db, rt.audit, rt.keyring, by=operator()).update_plan(
            plan_id,
            limits={k: v for k, v in limits.items() if v is not None},
            capabilities=list(capabilities) if capabilities else None,
            retention_days=retention_days,
        )
    _warn_unreachable(plan)
    _print([plan], as_json)
