"""The agent loop: one run of the model with its tools, metered, checkpointed, resumable.

``AgentService.start`` and ``AgentService.resume`` are the only ways a run executes.
The loop steps through pydantic-ai's graph with ``agent.iter`` so that the budget is
checked before every model request (``MeteredModel``) and tool call
(``GuardedToolset``), and saves a checkpoint after every model response. Tool
results live in the effect ledger, so the checkpoint plus the effects are the run's
whole durable state: a resume replays recorded effects and paid-for responses
instead of doing them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_core import ValidationError

from core.budget import MonthlyLedger, RunMeter, UsageSummary
from core.builder import RunGrant
from core.context import TenantContext
from core.db.engine import Database
from core.errors import (
    BudgetExceeded,
    CheckpointError,
    Conflict,
    ModelFailed,
    RunError,
    ToolError,
)
from core.logs import bound, log
from core.metered_model import MeteredModel, RunAccount
from core.models import ModelFactory
from core.prices import price_for
from core.runs import FINAL_STATUSES, RunRecord, RunStatus, RunStore
from core.settings import Settings
from core.tools import CapabilityRegistry
from core.toolset import GuardedToolset, ToolHook, build_toolset

INSTRUCTIONS = (
    "You are Tenantry, an assistant working inside a customer's workspace. Use only the "
    "tools you are given; answer briefly and say when you do not know."
)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run (or one allocation of it) ended."""

    run_id: str
    tenant_id: str
    status: str
    model: str
    answer: str | None = None
    halt: dict[str, Any] | None = None
    error: str | None = None
    usage: UsageSummary = field(default_factory=UsageSummary)


def _halt_detail(exc: BudgetExceeded) -> dict[str, Any]:
    return {"ceiling": exc.ceiling, "limit": exc.limit, "used": exc.used, "message": str(exc)}


class AgentService:
    """Executes runs for any transport: build a context, then ``start`` or ``resume``."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        models: ModelFactory,
        registry: CapabilityRegistry | None = None,
        *,
        on_tool_call: ToolHook | None = None,
        runs: RunStore | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.models = models
        self.registry = registry or CapabilityRegistry()
        self.runs = runs or RunStore(db)
        self.ledger = MonthlyLedger(db)
        self.on_tool_call = on_tool_call
        self._agent: Agent[TenantContext, str] = Agent(
            None, deps_type=TenantContext, output_type=str, instructions=INSTRUCTIONS
        )

    async def start(
        self,
        grant: RunGrant,
        prompt: str,
        *,
        model: str | None = None,
        conversation_id: str | None = None,
        history: Sequence[ModelMessage] = (),
    ) -> RunOutcome:
        """Record and execute a new run under ``grant``."""
        model_id = self.models.check(model or self.settings.model)
        await self.runs.create(
            grant.ctx, prompt=prompt, model=model_id, conversation_id=conversation_id
        )
        return await self._execute(grant, model_id, prompt, list(history))

    async def resume(self, grant: RunGrant) -> RunOutcome:
        """Continue ``grant.ctx.run_id`` from its checkpoint with the grant's fresh budget.

        Raises:
            NotFound: the run does not exist in this tenant.
            CheckpointError: its checkpoint is another tenant's or corrupt.
            Conflict: the run already ended.
        """
        ctx = grant.ctx
        record = await self.runs.get(ctx.tenant_id, ctx.run_id)
        if record.status in FINAL_STATUSES:
            raise Conflict(f"run {ctx.run_id} is {record.status}; only unfinished runs resume")
        checkpoint = await self.runs.load_checkpoint(ctx, ctx.run_id)
        await self.runs.update(ctx, status="running", new_attempt=True)
        if checkpoint is None:
            return await self._execute(grant, record.model, record.prompt, [])
        try:
            messages = ModelMessagesTypeAdapter.validate_json(checkpoint.messages)
        except ValidationError:
            raise CheckpointError(f"checkpoint of run {ctx.run_id} is corrupt") from None
        return await self._execute(grant, record.model, None, messages)

    async def _execute(
        self,
        grant: RunGrant,
        model_id: str,
        prompt: str | None,
        history: list[ModelMessage],
    ) -> RunOutcome:
        ctx = grant.ctx
        with bound(ctx):
            account = RunAccount(
                ctx=ctx,
                meter=RunMeter(ctx),
                ledger=self.ledger,
                plan=grant.plan,
                period=grant.period,
                price=price_for(model_id),
                default_max_tokens=self.settings.default_max_tokens,
            )
            bindings = self.registry.resolve(ctx)
            toolset = GuardedToolset(
                build_toolset(bindings),
                account=account,
                runs=self.runs,
                bindings={b.name: b for b in bindings},
                on_call=self.on_tool_call,
            )
            model = MeteredModel(self.models.get(model_id), account)
            try:
                answer = await self._loop(ctx, model, toolset, prompt, history)
            except BudgetExceeded as exc:
                log.info("run halted", ceiling=exc.ceiling, limit=exc.limit, used=exc.used)
                return await self._finish(ctx, model_id, "halted", halt=_halt_detail(exc))
            except (ModelFailed, ToolError, RunError) as exc:
                log.warning("run failed", error=str(exc))
                return await self._finish(ctx, model_id, "failed", error=str(exc))
            except Exception as exc:
                log.exception("run failed unexpectedly")
                return await self._finish(
                    ctx, model_id, "failed", error=f"{type(exc).__name__}: {exc}"
                )
            return await self._finish(ctx, model_id, "completed", answer=answer)

    async def _loop(
        self,
        ctx: TenantContext,
        model: MeteredModel,
        toolset: GuardedToolset,
        prompt: str | None,
        history: list[ModelMessage],
    ) -> str:
        step = 0
        async with self._agent.iter(
            prompt,
            deps=ctx,
            model=model,
            message_history=history or None,
            toolsets=[toolset],
            model_settings={"max_tokens": self.settings.default_max_tokens},
        ) as run:
            async for node in run:
                if Agent.is_call_tools_node(node):
                    step += 1
                    await self.runs.save_checkpoint(
                        ctx,
                        step_index=step,
                        messages=ModelMessagesTypeAdapter.dump_json(run.all_messages()),
                        usage={
                            "tokens": model.account.meter.tokens,
                            "tool_calls": model.account.meter.tool_calls,
                            "cost_microcents": model.account.meter.cost_microcents,
                        },
                    )
            assert run.result is not None
            return run.result.output

    async def _finish(
        self,
        ctx: TenantContext,
        model_id: str,
        status: RunStatus,
        *,
        answer: str | None = None,
        halt: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> RunOutcome:
        usage = await self.ledger.summary(ctx, ctx.run_id)
        detail: dict[str, Any] = {}
        if halt:
            detail["halt"] = halt
        if error:
            detail["error"] = error
        await self.runs.update(
            ctx,
            status=status,
            answer=answer,
            detail=detail,
            totals={
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "tool_calls": usage.tool_calls,
                "cost_microcents": usage.cost_microcents,
            },
        )
        return RunOutcome(
            run_id=ctx.run_id,
            tenant_id=ctx.tenant_id,
            status=status,
            model=model_id,
            answer=answer,
            halt=halt,
            error=error,
            usage=usage,
        )

    async def get(self, ctx: TenantContext, run_id: str) -> RunRecord:
        """A run of the context's tenant."""
        return await self.runs.get(ctx.tenant_id, run_id)
