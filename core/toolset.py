"""The one wrapper around every tool call of a run.

``GuardedToolset`` wraps the toolset built from the run's resolved bindings. For each
call, in order: the budget's tool check (ceiling, declared cost, monthly allowance),
the effect ledger (a call already made in this run returns its stored result),
execution under the run's deadline, then the effect, the settled cost and the audit
entry, written together in the run's next transaction (``core.journal``), before the
run calls anything again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.tools import Tool
from pydantic_ai.toolsets import FunctionToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_core import to_json
from sqlalchemy.engine import Connection

from core.authz import Authorizer
from core.budget import TokenUsage
from core.context import TenantContext
from core.errors import BudgetExceeded, ToolFailed, ToolRefused
from core.logs import log
from core.metered_model import RunAccount
from core.resources import ResourceLocator
from core.runs import RunStore
from core.tools import ToolBinding

ToolHook = Callable[[Connection, TenantContext, "ToolCallRecord"], None]
RefusalHook = Callable[[TenantContext, ToolRefused, dict[str, Any]], Awaitable[None]]
ToolStarted = Callable[[str], Awaitable[None]]
"""Told a capability's name as its call starts (a transport's status line)."""

OBSERVER_TIMEOUT_S = 2.0
"""How long a tool call waits for ``on_start``: a status line must never stall a run."""


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """What one finished tool call leaves behind, for audit and reporting."""

    capability: str
    step_id: str
    arguments: dict[str, Any]
    result: str
    cost_microcents: int
    latency_ms: int
    replayed: bool


def tool_step_id(tool_call_id: str | None) -> str:
    """``tool:<call id>``: the model's id for the call, stable once the response is saved."""
    return f"tool:{tool_call_id or 'unknown'}"


def build_toolset(bindings: Sequence[ToolBinding]) -> FunctionToolset[TenantContext]:
    """A pydantic-ai toolset exposing exactly the resolved bindings."""
    return FunctionToolset(
        [
            Tool(b.function, takes_ctx=False, name=b.name, description=b.description)
            for b in bindings
        ]
    )


@dataclass
class GuardedToolset(WrapperToolset[TenantContext]):
    """Budget, idempotency, cost and audit around every binding of one run."""

    account: RunAccount | None = None
    runs: RunStore | None = None
    bindings: dict[str, ToolBinding] = field(default_factory=dict)
    on_call: ToolHook | None = None
    authorizer: Authorizer | None = None
    locator: ResourceLocator | None = None
    on_refused: RefusalHook | None = None
    on_start: ToolStarted | None = None
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[TenantContext],
        tool: ToolsetTool[TenantContext],
    ) -> Any:
        """Run one tool call at most once per ``(run_id, step_id)``, one call at a time.

        Serialising the calls of a response makes the budget deterministic: a call that
        hits a ceiling halts the run after the calls before it were recorded, instead
        of cancelling siblings half-way.
        """
        async with self._one_at_a_time:
            return await self._call(name, tool_args, ctx, tool)

    async def _call(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[TenantContext],
        tool: ToolsetTool[TenantContext],
    ) -> Any:
        assert self.account is not None and self.runs is not None
        acc = self.account
        binding = self.bindings[name]
        step_id = tool_step_id(ctx.tool_call_id)
        try:
            await self._authorise(binding, tool_args)
        except ToolRefused as refused:
            acc.refused_tools += 1
            if self.on_refused is not None:
                await self.on_refused(acc.ctx, refused, tool_args)
            return {"error": "refused", "reason": refused.reason, "message": str(refused)}
        stored = acc.replay.effects.get(step_id)
        if stored is not None:
            return json.loads(stored)
        attempts = acc.replay.attempts(step_id)
        for row in attempts:
            if row.status == "reserved":
                acc.ledger.abandon(acc.journal, acc.ctx.run_id, row, acc.ctx.tenant_id)
        attempt_id = step_id if not attempts else f"{step_id}#{len(attempts) + 1}"
        acc.meter.before_tool_call(binding.cost_microcents)
        reservation = await acc.ledger.reserve(
            acc.ctx,
            acc.journal,
            plan=acc.plan,
            period=acc.period,
            step_id=attempt_id,
            kind="tool",
            tokens=0,
            cost_microcents=binding.cost_microcents,
            tool_calls=1,
        )
        acc.replay.opened(reservation)
        await self._announce(binding.capability)
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(acc.meter.remaining_s()):
                result = await super().call_tool(name, tool_args, ctx, tool)
        except TimeoutError:
            acc.ledger.settle_later(
                acc.journal, reservation, usage=TokenUsage(),
                cost_microcents=binding.cost_microcents, tool_calls=1, retried=True,
            )
            raise BudgetExceeded(
                "walltime_ms", acc.meter.budget.walltime_ceiling_ms, acc.meter.elapsed_ms()
            ) from None
        except (ToolFailed, ToolRefused) as exc:
            # The model hears what went wrong and may try something else; the failed call
            # is recorded like any other, so a resume does not repeat it.
            result = {"error": type(exc).__name__, "message": str(exc)}
        except Exception as exc:
            acc.ledger.settle_later(
                acc.journal, reservation, usage=TokenUsage(),
                cost_microcents=binding.cost_microcents, tool_calls=1, retried=True,
            )
            raise ToolFailed(
                f"tool {binding.capability} failed unexpectedly ({type(exc).__name__})"
            ) from exc
        latency_ms = int((asyncio.get_running_loop().time() - started) * 1000)
        encoded = to_json(result).decode()
        call = ToolCallRecord(
            capability=binding.capability,
            step_id=step_id,
            arguments=tool_args,
            result=encoded,
            cost_microcents=binding.cost_microcents,
            latency_ms=latency_ms,
            replayed=False,
        )
        runs, on_call = self.runs, self.on_call

        def record(conn: Connection) -> None:
            runs.record_effect_in(
                conn, acc.ctx, step_id=step_id, capability=binding.capability, result=encoded
            )
            acc.ledger.settle_in(
                conn, reservation, usage=TokenUsage(),
                cost_microcents=binding.cost_microcents, tool_calls=1,
            )
            if on_call is not None:
                on_call(conn, acc.ctx, call)

        acc.journal.defer(record)
        acc.replay.effects[step_id] = encoded
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

    async def _authorise(self, binding: ToolBinding, arguments: dict[str, Any]) -> None:
        """First thing in every call: the principal's right, then the resource's owner."""
        if self.authorizer is None:
            raise ToolRefused(binding.capability, "forbidden", "no authoriser for this run")
        self.authorizer.require(binding.capability)
        if binding.resource_kind and binding.resource_arg and self.locator is not None:
            resource_id = str(arguments.get(binding.resource_arg, ""))
            owner = await self.locator.owner(binding.resource_kind, resource_id)
            self.authorizer.require_resource(binding.capability, owner or "", resource_id)
