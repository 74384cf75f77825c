"""One allocation of a run: what it may spend, which tools it is offered, how it is built.

``allocate`` builds the pieces an allocation runs with (its account, its two tool
wrappers, its metered model); ``first_call_refusal`` decides, before a run is
recorded, whether its budget can pay for its first model call at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model, ModelRequestParameters

from core.audit.log import AuditLog
from core.budget.account import RunAccount
from core.budget.meter import MIN_OUTPUT_TOKENS
from core.builder import RunGrant
from core.errors import RunRefused
from core.metered_model import InputEstimate, MeteredModel
from core.prices import format_microcents, price_for
from core.resources import ResourceLocator
from core.tools import CapabilityRegistry, ToolBinding
from core.toolset import AuthorisedToolset, MeteredToolset, ToolStarted, build_toolset


@dataclass
class Allocation:
    """One allocation of a run in progress."""

    grant: RunGrant
    model_id: str
    salt: bytes
    account: RunAccount
    authorised: AuthorisedToolset
    model: MeteredModel
    started: float = field(default_factory=time.monotonic)


def offered(registry: CapabilityRegistry, grant: RunGrant) -> list[ToolBinding]:
    """The run's tools; none when its budget cannot pay a single tool call."""
    if grant.ctx.budget.tool_call_ceiling == 0:
        return []
    return registry.resolve(grant.ctx)


@dataclass(frozen=True, slots=True)
class Wiring:
    """What every allocation of a service is built with."""

    registry: CapabilityRegistry
    audit: AuditLog
    locator: ResourceLocator
    default_max_tokens: int


def allocate(wiring: Wiring, grant: RunGrant, provider: Model, model_id: str, salt: bytes,
             account: RunAccount, on_tool: ToolStarted | None) -> Allocation:
    """The run's account, its two tool wrappers and its metered model."""
    bindings = offered(wiring.registry, grant)
    by_name = {b.name: b for b in bindings}
    metered = MeteredToolset(build_toolset(bindings), by_name, account, wiring.audit, salt,
                             on_start=on_tool)
    authorised = AuthorisedToolset(metered, by_name, grant.plan.capabilities, grant.authorizer,
                                   wiring.locator, wiring.audit, salt)
    model = MeteredModel(provider, account, price_for(model_id), wiring.default_max_tokens)
    return Allocation(grant, model_id, salt, account, authorised, model)


def first_call_refusal(registry: CapabilityRegistry, grant: RunGrant, model_id: str,
                       first: list[ModelMessage]) -> RunRefused | None:
    """Why the run cannot be admitted, if its budget cannot pay its first model call.

    The budget is the plan's per-run ceilings capped by what is left of the month; the
    first call is bounded as the model wrapper will bound it, tools included.
    """
    tools = build_toolset(offered(registry, grant)).tools.values()
    estimate = InputEstimate().of(
        first, ModelRequestParameters(function_tools=[tool.tool_def for tool in tools]))
    price, budget = price_for(model_id), grant.ctx.budget
    tokens = estimate + MIN_OUTPUT_TOKENS
    cost = price.input_bound(estimate) + price.cost(input_tokens=0,
                                                    output_tokens=MIN_OUTPUT_TOKENS)
    if budget.token_ceiling >= tokens and budget.cost_ceiling_microcents >= cost:
        return None
    plan = grant.plan
    monthly = (budget.token_ceiling < plan.run_tokens
               or budget.cost_ceiling_microcents < plan.run_cost_microcents)
    return RunRefused(
        "allowance_exhausted" if monthly else "run_ceiling_too_small",
        f"the first model call of this run needs up to {tokens} tokens and "
        f"{format_microcents(cost)}; the run may spend {budget.token_ceiling} tokens and "
        f"{format_microcents(budget.cost_ceiling_microcents)}"
        + (" (what is left of the month)" if monthly else " (the plan's per-run ceiling)"),
    )


def unoffered_reason(registry: CapabilityRegistry, grant: RunGrant, capability: str) -> str:
    """Why a run was not offered a capability its model asked for."""
    if capability in registry and capability not in grant.plan.capabilities:
        return "not_licensed"
    if capability in registry and capability not in grant.ctx.scope:
        return "forbidden"
    return "not_resolved"
