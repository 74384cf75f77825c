"""The agent loop: one run of the model with its tools, metered, audited, resumable.

``AgentService.open`` derives a run's context (or refuses it, audited);
``AgentService.start`` and ``AgentService.resume`` are the only ways a run executes.
The loop steps through pydantic-ai's graph with ``agent.iter`` so that the budget is
checked before every model request (``MeteredModel``) and tool call
(``GuardedToolset``), and saves a checkpoint after every model response. Tool
results live in the effect ledger, so the checkpoint plus the effects are the run's
whole durable state: a resume replays recorded effects and paid-for responses
instead of doing them again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_core import ValidationError
from sqlalchemy.engine import Connection

from core import audit as events
from core.audit import AuditLog
from core.audit.log import digest_with
from core.authz import Authorizer
from core.budget import MonthlyLedger, Replay, RunMeter, UsageSummary, summary_in
from core.builder import RunGrant, build_context
from core.context import Initiator, PrincipalKind, TenantContext
from core.db.engine import Database
from core.errors import (
    BudgetExceeded,
    CheckpointError,
    Conflict,
    ModelFailed,
    RunError,
    RunRefused,
    ToolError,
    ToolRefused,
)
from core.logs import bound, log
from core.memory import ConversationHistory
from core.metered_model import MeteredModel, RunAccount
from core.models import ModelFactory
from core.prices import price_for
from core.resources import ResourceLocator
from core.runs import FINAL_STATUSES, HistoryEncoder, RunRecord, RunStatus, RunStore
from core.settings import Settings
from core.tools import CapabilityRegistry, tool_name
from core.toolset import GuardedToolset, ToolCallRecord, ToolStarted, build_toolset

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
    refused_tools: tuple[tuple[str, str], ...] = ()


def _halt_detail(exc: BudgetExceeded) -> dict[str, Any]:
    return {"ceiling": exc.ceiling, "limit": exc.limit, "used": exc.used, "message": str(exc)}


class AgentService:
    """Executes runs for any transport: ``open`` a context, then ``start`` or ``resume``."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        models: ModelFactory,
        audit: AuditLog,
        registry: CapabilityRegistry | None = None,
        *,
        runs: RunStore | None = None,
        history: ConversationHistory | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.models = models
        self.audit = audit
        self.registry = registry or CapabilityRegistry()
        self.runs = runs or RunStore(db)
        self.history = history or ConversationHistory(db)
        self.ledger = MonthlyLedger(db)
        self.locator = ResourceLocator(db)
        self._agent: Agent[TenantContext, str] = Agent(
            None, deps_type=TenantContext, output_type=str, instructions=INSTRUCTIONS,
            retries=3,
        )

    async def open(
        self,
        *,
        tenant_id: str,
        principal_id: str,
        principal_kind: PrincipalKind = "user",
        initiator: Initiator = "user",
        correlation_id: str | None = None,
        extra_roles: Iterable[str] = (),
        run_id: str | None = None,
    ) -> RunGrant:
        """Derive a run's context with its scope narrowed to the principal's roles.

        Args:
            extra_roles: Roles vouched for by the platform for this run only.
            run_id: Given to resume an existing run with a fresh allocation.

        Raises:
            NotFound: unknown tenant.
            RunRefused: suspended tenant or spent allowance; audited in the tenant's log.
        """
        try:
            grant = await build_context(
                self.db, tenant_id=tenant_id, principal_id=principal_id,
                principal_kind=principal_kind, initiator=initiator,
                correlation_id=correlation_id, run_id=run_id,
            )
        except RunRefused as refused:
            await self.audit.record(tenant_id, events.RUN_REFUSED, {
                "principal": principal_id, "reason": refused.reason,
                "correlation_id": correlation_id,
            })
            raise
        roles = frozenset(extra_roles)
        authorizer = await Authorizer.for_run(self.db, grant.ctx, roles)
        ctx = dataclasses.replace(
            grant.ctx, scope=authorizer.permitted_capabilities(grant.ctx.scope)
        )
        return dataclasses.replace(
            grant, ctx=ctx, extra_roles=roles, authorizer=authorizer
        )

    async def start(
        self,
        grant: RunGrant,
        prompt: str,
        *,
        model: str | None = None,
        conversation_id: str | None = None,
        history: Sequence[ModelMessage] = (),
        on_tool: ToolStarted | None = None,
    ) -> RunOutcome:
        """Record and execute a new run under ``grant``.

        Args:
            conversation_id: Continues that conversation of the principal: its latest
                turns (``settings.history_window``) are shown to the model, and this
                run's prompt and answer are added to it.
            on_tool: Told each tool call's capability as it starts (a status line).
        """
        model_id = self.models.check(model or self.settings.model)
        ctx = grant.ctx
        if conversation_id is not None and not history:
            history = await self._history(ctx, conversation_id)

        def begin(conn: Connection) -> bytes:
            self.runs.create_in(
                conn, ctx, prompt=prompt, model=model_id, conversation_id=conversation_id
            )
            salt = self.audit.salt_in(conn, ctx.tenant_id)
            self.audit.append_in(conn, ctx.tenant_id, events.RUN_STARTED, {
                "principal": ctx.principal_id,
                "principal_kind": ctx.principal_kind,
                "initiator": ctx.audit.initiator,
                "correlation_id": ctx.audit.correlation_id,
                "prompt_digest": digest_with(salt, prompt),
                "model": model_id,
                "scope": sorted(ctx.scope),
            }, run_id=ctx.run_id)
            return salt

        salt = await self.db.run(begin)
        return await self._execute(grant, model_id, prompt, list(history), Replay(), salt,
                                   on_tool)

    async def resume(self, grant: RunGrant, *, on_tool: ToolStarted | None = None) -> RunOutcome:
        """Continue ``grant.ctx.run_id`` from its checkpoint with the grant's fresh budget.

        A ``queued`` run (recorded but never started, as a transport parks a request at
        shutdown) starts here for the first time: it is audited as started, not as a
        second attempt. A run without a checkpoint starts from its prompt, with its
        conversation's history as ``start`` gives it.

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
        messages: list[ModelMessage] = []
        if checkpoint is not None:
            try:
                messages = ModelMessagesTypeAdapter.validate_json(checkpoint.messages)
            except ValidationError:
                raise CheckpointError(f"checkpoint of run {ctx.run_id} is corrupt") from None
        first = record.status == "queued"

        def begin(conn: Connection) -> bytes:
            self.runs.update_in(conn, ctx, status="running", new_attempt=not first)
            salt = self.audit.salt_in(conn, ctx.tenant_id)
            started: dict[str, Any] = {
                "principal": ctx.principal_id,
                "principal_kind": ctx.principal_kind,
                "initiator": ctx.audit.initiator,
                "correlation_id": ctx.audit.correlation_id,
                "model": record.model,
            }
            if first:
                started |= {"prompt_digest": digest_with(salt, record.prompt),
                            "scope": sorted(ctx.scope)}
            else:
                started |= {"resumed": True, "attempt": record.attempts + 1}
            self.audit.append_in(conn, ctx.tenant_id, events.RUN_STARTED, started,
                                 run_id=ctx.run_id)
            return salt

        salt = await self.db.run(begin)
        replay = Replay.of(
            await self.ledger.run_rows(ctx.tenant_id, ctx.run_id), await self.runs.effects(ctx)
        )
        if checkpoint is None:
            history = (await self._history(ctx, record.conversation_id)
                       if record.conversation_id is not None else [])
            return await self._execute(grant, record.model, record.prompt, history, replay, salt,
                                       on_tool)
        encoder = HistoryEncoder(messages[:checkpoint.settled], checkpoint.segments)
        return await self._execute(grant, record.model, None, messages, replay, salt, on_tool,
                                   encoder)

    async def _execute(
        self,
        grant: RunGrant,
        model_id: str,
        prompt: str | None,
        history: list[ModelMessage],
        replay: Replay,
        salt: bytes,
        on_tool: ToolStarted | None,
        encoder: HistoryEncoder | None = None,
    ) -> RunOutcome:
        """One allocation of the run.

        Args:
            replay: What earlier allocations recorded (empty for a new run).
            salt: The tenant's digest salt, fetched once per allocation.
            on_tool: Told each tool call's capability as it starts.
            encoder: What the run's checkpoint already stores of ``history``.
        """
        ctx = grant.ctx
        started = time.monotonic()
        with bound(ctx):
            account = RunAccount(
                ctx=ctx,
                meter=RunMeter(ctx),
                ledger=self.ledger,
                plan=grant.plan,
                period=grant.period,
                price=price_for(model_id),
                default_max_tokens=self.settings.default_max_tokens,
                replay=replay,
            )
            bindings = self.registry.resolve(ctx)
            refused: list[tuple[str, str]] = []

            async def on_refused(
                ctx: TenantContext, refusal: ToolRefused, arguments: dict[str, Any]
            ) -> None:
                refused.append((refusal.capability, refusal.reason))
                await self._audit_refusal(ctx, refusal, arguments)

            toolset = GuardedToolset(
                build_toolset(bindings),
                account=account,
                runs=self.runs,
                bindings={b.name: b for b in bindings},
                on_call=lambda conn, ctx, call: self._audit_tool_call(conn, ctx, call, salt),
                authorizer=grant.authorizer
                or await Authorizer.for_run(self.db, ctx, grant.extra_roles),
                locator=self.locator,
                on_refused=on_refused,
                on_start=on_tool,
            )
            model = MeteredModel(self.models.get(model_id), account)
            try:
                answer = await self._loop(grant, model, toolset, prompt, history, refused,
                                          encoder or HistoryEncoder())
            except BudgetExceeded as exc:
                log.info("run halted", ceiling=exc.ceiling, limit=exc.limit, used=exc.used)
                return await self._finish(ctx, model_id, "halted", started, refused, salt,
                                          halt=_halt_detail(exc))
            except (ModelFailed, ToolError, RunError) as exc:
                log.warning("run failed", error=str(exc))
                return await self._finish(ctx, model_id, "failed", started, refused, salt,
                                          error=str(exc))
            except Exception as exc:
                log.exception("run failed unexpectedly")
                return await self._finish(ctx, model_id, "failed", started, refused, salt,
                                          error=f"{type(exc).__name__}: {exc}")
            return await self._finish(ctx, model_id, "completed", started, refused, salt,
                                      answer=answer)

    async def _loop(
        self,
        grant: RunGrant,
        model: MeteredModel,
        toolset: GuardedToolset,
        prompt: str | None,
        history: list[ModelMessage],
        refused: list[tuple[str, str]],
        encoder: HistoryEncoder,
    ) -> str:
        """Step through the run, checkpointing after every model response.

        Settlements, checkpoints and tool effects ride on the run's next reservation
        (``core.journal``); what is still deferred when the allocation ends, normally
        or by an error or a shutdown, is committed here.
        """
        ctx = grant.ctx
        step = 0
        journal = model.account.journal
        try:
            async with self._agent.iter(
                prompt,
                deps=ctx,
                model=model,
                message_history=history or None,
                toolsets=[toolset],
                model_settings={"max_tokens": self.settings.default_max_tokens},
            ) as run:
                async for node in run:
                    if not Agent.is_call_tools_node(node):
                        continue
                    step += 1
                    self.runs.save_checkpoint(
                        ctx,
                        journal,
                        step_index=step,
                        history=encoder.encode(run.all_messages()),
                        usage={
                            "tokens": model.account.meter.tokens,
                            "tool_calls": model.account.meter.tool_calls,
                            "cost_microcents": model.account.meter.cost_microcents,
                        },
                    )
                    for part in node.model_response.parts:
                        if (isinstance(part, ToolCallPart)
                                and part.tool_name not in toolset.bindings):
                            refused.append(await self._refuse_unresolved(grant, part))
                assert run.result is not None
                answer = run.result.output
        except (Exception, asyncio.CancelledError):
            await journal.flush()
            raise
        await journal.flush()
        return answer

    async def _refuse_unresolved(self, grant: RunGrant, part: ToolCallPart) -> tuple[str, str]:
        """A call to a tool this run never offered: audit it, and say why it was not offered.

        pydantic-ai answers the model itself ("unknown tool"), and the run goes on.
        """
        capability = part.tool_name.replace("__", ".")
        ctx = grant.ctx
        if capability not in self.registry:
            reason = "not_resolved"
        elif capability not in grant.plan.capabilities:
            reason = "not_licensed"
        elif capability not in ctx.scope:
            reason = "forbidden"
        else:
            reason = "not_resolved"
        refusal = ToolRefused(capability, reason, f"{capability!r} was not offered to this run")
        await self._audit_refusal(ctx, refusal, part.args_as_dict())
        return capability, reason

    async def _audit_refusal(
        self, ctx: TenantContext, refusal: ToolRefused, arguments: dict[str, Any]
    ) -> None:
        log.info("tool refused", capability=refusal.capability, reason=refusal.reason)
        await self.audit.record(ctx.tenant_id, events.TOOL_REFUSED, {
            "capability": refusal.capability,
            "tool": tool_name(refusal.capability),
            "principal": ctx.principal_id,
            "reason": refusal.reason,
            "arguments": self.audit.redact(arguments),
        }, run_id=ctx.run_id)

    def _audit_tool_call(
        self, conn: Connection, ctx: TenantContext, call: ToolCallRecord, salt: bytes
    ) -> None:
        self.audit.append_in(conn, ctx.tenant_id, events.TOOL_INVOKED, {
            "capability": call.capability,
            "step_id": call.step_id,
            "principal": ctx.principal_id,
            "arguments": self.audit.redact(call.arguments),
            "result_digest": digest_with(salt, call.result),
            "latency_ms": call.latency_ms,
            "cost_microcents": call.cost_microcents,
        }, run_id=ctx.run_id)

    async def _finish(
        self,
        ctx: TenantContext,
        model_id: str,
        status: RunStatus,
        started: float,
        refused: list[tuple[str, str]],
        salt: bytes,
        *,
        answer: str | None = None,
        halt: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> RunOutcome:
        walltime_ms = int((time.monotonic() - started) * 1000)
        detail: dict[str, Any] = {}
        if halt:
            detail["halt"] = halt
        if error:
            detail["error"] = error
        if refused:
            detail["refused_tools"] = [list(pair) for pair in refused]

        def finish(conn: Connection) -> UsageSummary:
            usage = summary_in(conn, ctx, ctx.run_id)
            if answer is not None:
                record = self.runs.get_in(conn, ctx.tenant_id, ctx.run_id)
                if record.conversation_id is not None:
                    self.history.append_in(conn, ctx, record.conversation_id, "user",
                                           record.prompt)
                    self.history.append_in(conn, ctx, record.conversation_id, "assistant",
                                           answer)
            self.runs.update_in(
                conn, ctx, status=status, answer=answer, detail=detail,
                totals={
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "tool_calls": usage.tool_calls,
                    "cost_microcents": usage.cost_microcents,
                },
            )
            if halt:
                self.audit.append_in(conn, ctx.tenant_id, events.RUN_HALTED, {
                    "ceiling": halt["ceiling"], "limit": halt["limit"], "used": halt["used"],
                }, run_id=ctx.run_id)
                return usage
            fields: dict[str, Any] = {
                "outcome": status,
                "tokens_in": usage.input_tokens,
                "tokens_out": usage.output_tokens,
                "tool_calls": usage.tool_calls,
                "tools_refused": len(refused),
                "walltime_ms": walltime_ms,
                "cost_microcents": usage.cost_microcents,
                "retried_cost_microcents": usage.retried_cost_microcents,
            }
            if answer is not None:
                fields["answer_digest"] = digest_with(salt, answer)
            self.audit.append_in(conn, ctx.tenant_id, events.RUN_COMPLETED, fields,
                                 run_id=ctx.run_id)
            return usage

        usage = await self.db.run(finish)
        return RunOutcome(
            run_id=ctx.run_id, tenant_id=ctx.tenant_id, status=status, model=model_id,
            answer=answer, halt=halt, error=error, usage=usage, refused_tools=tuple(refused),
        )

    async def _history(self, ctx: TenantContext, conversation_id: str) -> list[ModelMessage]:
        """The conversation's latest turns, as the model's message history."""
        turns = await self.history.window(ctx, conversation_id, self.settings.history_window)
        messages: list[ModelMessage] = []
        for turn in turns:
            if turn.role == "user":
                messages.append(ModelRequest(parts=[UserPromptPart(turn.text)]))
            else:
                messages.append(ModelResponse(parts=[TextPart(turn.text)]))
        return messages

    async def get(self, ctx: TenantContext, run_id: str) -> RunRecord:
        """A run of the context's tenant."""
        return await self.runs.get(ctx.tenant_id, run_id)
