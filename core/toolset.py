"""The two wrappers around every tool call of a run, and the tool-effect ledger.

A run's toolset is built from its resolved bindings and wrapped twice, each wrapper
one concern (pydantic-ai's ``WrapperToolset``)::

    AuthorisedToolset(MeteredToolset(FunctionToolset(bindings)))

- ``AuthorisedToolset``, first: the principal's right to the capability and the
  owner of any resource it names; a refusal is audited and told to the model.
- ``MeteredToolset``: a call already made in this run returns its recorded result;
  otherwise the run's ceilings are checked, the declared cost is reserved against the
  month, the tool runs under the run's deadline, and its result is committed with its
  settlement and its audit event (``record_tool_call``) as soon as it returns.

``tool_effects`` is written here and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.tools import Tool
from pydantic_ai.toolsets import FunctionToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_core import to_json
from sqlalchemy import select
from sqlalchemy.engine import Connection

from core.audit import events
from core.audit.log import AuditLog, arguments_fields, digest_with
from core.authz import Authorizer
from core.budget.account import RunAccount
from core.budget.ledger import Reservation, settle
from core.budget.meter import TokenUsage
from core.context import TenantContext
from core.db.engine import reads
from core.db.schema import tool_effects
from core.errors import ToolFailed, ToolRefused, ToolUnconfirmed
from core.logs import log
from core.resources import ResourceLocator
from core.tools import ToolBinding, tool_name

ToolStarted = Callable[[str], Awaitable[None]]
"""Told a capability's name as its call starts (a transport's status line)."""

OBSERVER_TIMEOUT_S = 2.0
"""How long a tool call waits for ``on_start``: a status line must never stall a run."""


def tool_step_id(tool_call_id: str | None) -> str:
    """``tool:<call id>``: the model's id for the call, stable once the response is saved."""
    return f"tool:{tool_call_id or 'unknown'}"


def build_toolset(bindings: Sequence[ToolBinding]) -> FunctionToolset[TenantContext]:
    """A pydantic-ai toolset exposing exactly the resolved bindings."""
    return FunctionToolset([
        Tool(b.function, takes_ctx=True, name=b.name, description=b.description)
        for b in bindings
    ])


@reads
def recorded_effects(conn: Connection, ctx: TenantContext) -> dict[str, str]:
    """The recorded results of the run's tool calls so far, by step id."""
    rows = conn.execute(
        select(tool_effects.c.step_id, tool_effects.c.result).where(
            tool_effects.c.tenant_id == ctx.tenant_id, tool_effects.c.run_id == ctx.run_id,
        )
    ).all()
    return {str(row.step_id): str(row.result) for row in rows}


_RECORD_EFFECT = tool_effects.insert()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One finished tool call: what the effect ledger and the audit log keep of it."""

    capability: str
    step_id: str
    arguments: dict[str, Any]
    result: str
    cost_microcents: int
    latency_ms: int


def record_tool_call(conn: Connection, ctx: TenantContext, held: Reservation, call: ToolCall,
                     audit: AuditLog, salt: bytes) -> None:
    """The effect, its settlement and its ``tool.invoked`` event, in one transaction."""
    conn.execute(_RECORD_EFFECT, {
        "run_id": ctx.run_id, "step_id": call.step_id, "tenant_id": ctx.tenant_id,
        "capability": call.capability, "result": call.result, "created_at": datetime.now(UTC),
    })
    settle(conn, held, usage=TokenUsage(), cost_microcents=call.cost_microcents)
    audit.append(conn, ctx.tenant_id, events.TOOL_INVOKED, {
        "capability": call.capability,
        "step_id": call.step_id,
        "principal": ctx.principal_id,
        **arguments_fields(salt, call.arguments),
        "result_digest": digest_with(salt, call.result),
        "latency_ms": call.latency_ms,
        "cost_microcents": call.cost_microcents,
    }, run_id=ctx.run_id)


UNCONFIRMED = to_json({
    "error": "unconfirmed",
    "message": "this call may have run before the service stopped; it was not repeated, "
    "and whether it took effect is unknown: tell the person to check before asking again",
}).decode()
"""What the model is told of a non-retryable call that may or may not have run."""


def record_unconfirmed(conn: Connection, ctx: TenantContext, step_id: str, capability: str,
                       audit: AuditLog) -> None:
    """Record a non-retryable call that may have run as unconfirmed, never to be repeated."""
    conn.execute(_RECORD_EFFECT, {
        "run_id": ctx.run_id, "step_id": step_id, "tenant_id": ctx.tenant_id,
        "capability": capability, "result": UNCONFIRMED, "created_at": datetime.now(UTC),
    })
    audit.append(conn, ctx.tenant_id, events.TOOL_UNCONFIRMED, {
        "capability": capability, "step_id": step_id, "principal": ctx.principal_id,
    }, run_id=ctx.run_id)


async def audit_refusal(audit: AuditLog, ctx: TenantContext, refusal: ToolRefused,
                        arguments: Mapping[str, Any], salt: bytes) -> None:
    """Record a refused tool call in the tenant's log."""
    log.info("tool refused", capability=refusal.capability, reason=refusal.reason)
    await audit.record(ctx.tenant_id, events.TOOL_REFUSED, {
        "capability": refusal.capability,
        "tool": tool_name(refusal.capability),
        "principal": ctx.principal_id,
        "reason": refusal.reason,
        **arguments_fields(salt, arguments),
    }, run_id=ctx.run_id)


@dataclass
class AuthorisedToolset(WrapperToolset[TenantContext]):
    """Authorisation first, inside every call: the plan's licence, the principal's right,
    then the resource's owner."""

    bindings: Mapping[str, ToolBinding]
    licensed: frozenset[str]
    authorizer: Authorizer
    locator: ResourceLocator
    audit: AuditLog
    salt: bytes
    refused: list[tuple[str, str]] = field(default_factory=list)
    """``(capability, reason)`` of every call refused in this run, in order."""

    async def call_tool(self, name: str, tool_args: dict[str, Any],
                        ctx: RunContext[TenantContext], tool: ToolsetTool[TenantContext]) -> Any:
        """Refuse (audited, and told to the model) or pass the call on."""
        binding = self.bindings[name]
        try:
            if binding.capability not in self.licensed:
                raise ToolRefused(binding.capability, "not_licensed",
                                  f"the tenant's plan does not license {binding.capability!r}")
            self.authorizer.require(binding.capability)
            if binding.resource_kind and binding.resource_arg:
                resource_id = str(tool_args.get(binding.resource_arg, ""))
                owner = await self.locator.owner(binding.resource_kind, resource_id)
                self.authorizer.require_resource(binding.capability, owner or "", resource_id)
        except ToolRefused as refusal:
            self.refused.append((refusal.capability, refusal.reason))
            await audit_refusal(self.audit, ctx.deps, refusal, tool_args, self.salt)
            return {"error": "refused", "reason": refusal.reason, "message": str(refusal)}
        return await super().call_tool(name, tool_args, ctx, tool)


@dataclass
class MeteredToolset(WrapperToolset[TenantContext]):
    """Each call at most once per ``(run_id, step_id)``, within budget, recorded at once."""

    bindings: Mapping[str, ToolBinding]
    account: RunAccount
    audit: AuditLog
    salt: bytes
    on_start: ToolStarted | None = None
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def call_tool(self, name: str, tool_args: dict[str, Any],
                        ctx: RunContext[TenantContext], tool: ToolsetTool[TenantContext]) -> Any:
        """Replay a recorded call, or make it once; the calls of a response one at a time.

        Serialising the calls of a response makes the budget deterministic: a call that
        hits a ceiling halts the run after the calls before it were recorded, instead
        of cancelling siblings half-way.
        """
        step = tool_step_id(ctx.tool_call_id)
        async with self._one_at_a_time:
            stored = self.account.replay.effects.get(step)
            if stored is not None:
                return json.loads(stored)
            return await self._call(self.bindings[name], step, name, tool_args, ctx, tool)

    async def _call(self, binding: ToolBinding, step: str, name: str, tool_args: dict[str, Any],
                    ctx: RunContext[TenantContext], tool: ToolsetTool[TenantContext]) -> Any:
        acc, cost = self.account, binding.cost_microcents
        if not binding.retryable and step in acc.replay.attempts_by_step:
            # An earlier allocation began this call and recorded no result: it may have
            # had its outside effect. Record that it is unconfirmed, and stop for a person.
            await acc.db.run(record_unconfirmed, acc.ctx, step, binding.capability, self.audit)
            acc.replay.effects[step] = UNCONFIRMED
            raise ToolUnconfirmed(binding.capability)
        acc.meter.before_tool_call(cost)
        held = await acc.open_attempt(step, "tool", tokens=0, cost_microcents=cost, tool_calls=1)
        await self._announce(binding.capability)
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(acc.meter.remaining_s()):
                result = await super().call_tool(name, tool_args, ctx, tool)
        except TimeoutError:
            await acc.abandon(held, usage=TokenUsage(), cost_microcents=cost)
            raise acc.meter.out_of_time() from None
        except (ToolFailed, ToolRefused) as exc:
            # The model hears what went wrong and may try something else; the failed call
            # is recorded like any other, so a resume does not repeat it.
            result = {"error": type(exc).__name__, "message": str(exc)}
        except Exception as exc:
            await acc.abandon(held, usage=TokenUsage(), cost_microcents=cost)
            raise ToolFailed(
                f"tool {binding.capability} failed unexpectedly ({type(exc).__name__})"
            ) from exc
        call = ToolCall(
            capability=binding.capability, step_id=step, arguments=tool_args,
            result=to_json(result).decode(), cost_microcents=cost,
            latency_ms=int((asyncio.get_running_loop().time() - started) * 1000),
        )
        await acc.db.run(record_tool_call, acc.ctx, held, call, self.audit, self.salt)
        acc.replay.effects[step] = call.result
        return result

    async def _announce(self, capability: str) -> None:
        """Tell ``on_start``; its failure or slowness is logged, never the run's."""
        if self.on_start is None:
            return
        try:
            async with asyncio.timeout(OBSERVER_TIMEOUT_S):
                await self.on_start(capability)
        except Exception as exc:  # an observer's trouble is not the run's
            log.info("tool observer failed", capability=capability,
                     error=f"{type(exc).__name__}: {exc}"[:200])
