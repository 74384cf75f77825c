"""The agent loop: one run of the model with its tools, metered, audited, resumable.

``AgentService.open`` derives a run's context (or refuses it, audited);
``AgentService.start`` and ``AgentService.resume`` are the only ways a run executes.
What a run writes, and where:

- ``start`` / ``resume``: the run's record and its ``run.started`` event, one
  transaction (``core.run_records``);
- before every model or tool call: its reservation (``core.budget.account``);
- after a model response: its settlement, with the response to replay
  (``core.metered_model``), then the checkpoint (here, ``_loop``);
- after a tool returns: its effect, settlement and ``tool.invoked`` event
  (``core.toolset``);
- at the end: totals, conversation turns and the closing event, one transaction
  (``core.run_records``).
"""

from __future__ import annotations

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
from pydantic_ai.models import ModelRequestParameters
from pydantic_core import ValidationError

from core import audit as events
from core.audit import AuditLog
from core.budget.account import RunAccount
from core.budget.ledger import UsageSummary
from core.budget.meter import MIN_OUTPUT_TOKENS, RunMeter
from core.builder import RunGrant, build_context
from core.checkpoints import HistoryEncoder, save_checkpoint
from core.context import Initiator, PrincipalKind, TenantContext
from core.db.engine import Database
from core.errors import (
    BudgetExceeded,
    CheckpointError,
    ModelFailed,
    RunError,
    RunRefused,
    ToolError,
    ToolRefused,
    ToolUnconfirmed,
)
from core.logs import bound, log
from core.memory import conversation_window
from core.metered_model import InputEstimate, MeteredModel
from core.models import ModelFactory
from core.prices import format_microcents, price_for
from core.resources import ResourceLocator
from core.run_records import Ending, finish_run, resume_run, start_run
from core.runs import RunRecord, get_run
from core.settings import Settings
from core.tools import CapabilityRegistry, ToolBinding
from core.toolset import (
    AuthorisedToolset,
    MeteredToolset,
    ToolStarted,
    audit_refusal,
    build_toolset,
)

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


@dataclass
class _Allocation:
    """One allocation of a run in progress: what ``_execute`` hands to ``_loop``."""

    grant: RunGrant
    model_id: str
    salt: bytes
    account: RunAccount
    authorised: AuthorisedToolset
    model: MeteredModel
    started: float = field(default_factory=time.monotonic)


class AgentService:
    """Executes runs for any transport: ``open`` a context, then ``start`` or ``resume``."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        models: ModelFactory,
        audit: AuditLog,
        registry: CapabilityRegistry | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.models = models
        self.audit = audit
        self.registry = registry or CapabilityRegistry()
        self.locator = ResourceLocator(db)
        self._agent: Agent[TenantContext, str] = Agent(
            None, deps_type=TenantContext, output_type=str, instructions=INSTRUCTIONS, retries=3,
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
            return await build_context(
                self.db, tenant_id=tenant_id, principal_id=principal_id,
                principal_kind=principal_kind, initiator=initiator, extra_roles=extra_roles,
                correlation_id=correlation_id, run_id=run_id,
            )
        except RunRefused as refused:
            await self.audit.record(tenant_id, events.RUN_REFUSED, {
                "principal": principal_id, "reason": refused.reason,
                "correlation_id": correlation_id,
            })
            raise

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

        Raises:
            RunRefused: ``allowance_exhausted`` or ``run_ceiling_too_small``: the run's
                budget cannot pay even its first model call; nothing is recorded but
                the refusal, in the audit log.
        """
        model_id = self.models.check(model or self.settings.model)
        if conversation_id is not None and not history:
            history = await self._history(grant, conversation_id)
        await self._admit(grant, model_id, [
            *history, ModelRequest(parts=[UserPromptPart(prompt)], instructions=INSTRUCTIONS)])
        salt = await self.db.run(start_run, grant.ctx, self.audit, prompt=prompt,
                                 model=model_id, conversation_id=conversation_id)
        allocation = self._allocate(grant, model_id, salt, RunAccount(
            self.db, grant.ctx, RunMeter(grant.ctx), grant.plan, grant.period), on_tool)
        return await self._execute(allocation, prompt, list(history), HistoryEncoder())

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
        resumed = await self.db.run(resume_run, grant.ctx, self.audit)
        record, checkpoint = resumed.record, resumed.checkpoint
        account = RunAccount(self.db, grant.ctx, RunMeter(grant.ctx), grant.plan, grant.period,
                             resumed.replay)
        allocation = self._allocate(grant, record.model, resumed.salt, account, on_tool)
        if checkpoint is None:
            history = ([] if record.conversation_id is None
                       else await self._history(grant, record.conversation_id))
            return await self._execute(allocation, record.prompt, history, HistoryEncoder())
        try:
            messages = ModelMessagesTypeAdapter.validate_json(checkpoint.messages)
        except ValidationError:
            raise CheckpointError(f"checkpoint of run {record.id} is corrupt") from None
        encoder = HistoryEncoder(messages[:checkpoint.settled], checkpoint.segments)
        return await self._execute(allocation, None, messages, encoder)

    def _bindings(self, grant: RunGrant) -> list[ToolBinding]:
        """The run's tools; none when its budget cannot pay a single tool call."""
        if grant.ctx.budget.tool_call_ceiling == 0:
            return []
        return self.registry.resolve(grant.ctx)

    async def _admit(self, grant: RunGrant, model_id: str, first: list[ModelMessage]) -> None:
        """Refuse, audited, a run whose budget cannot pay for its first model call."""
        tools = build_toolset(self._bindings(grant)).tools.values()
        estimate = InputEstimate().of(
            first, ModelRequestParameters(function_tools=[tool.tool_def for tool in tools]))
        price, budget = price_for(model_id), grant.ctx.budget
        tokens = estimate + MIN_OUTPUT_TOKENS
        cost = price.input_bound(estimate) + price.cost(input_tokens=0,
                                                        output_tokens=MIN_OUTPUT_TOKENS)
        if budget.token_ceiling >= tokens and budget.cost_ceiling_microcents >= cost:
            return
        plan = grant.plan
        monthly = (budget.token_ceiling < plan.run_tokens
                   or budget.cost_ceiling_microcents < plan.run_cost_microcents)
        reason = "allowance_exhausted" if monthly else "run_ceiling_too_small"
        refused = RunRefused(reason, (
            f"the first model call of this run needs up to {tokens} tokens and "
            f"{format_microcents(cost)}; the run may spend {budget.token_ceiling} tokens and "
            f"{format_microcents(budget.cost_ceiling_microcents)}"
            + (" (what is left of the month)" if monthly else " (the plan's per-run ceiling)")))
        await self.audit.record(grant.ctx.tenant_id, events.RUN_REFUSED, {
            "principal": grant.ctx.principal_id, "reason": reason,
            "correlation_id": grant.ctx.audit.correlation_id,
        })
        raise refused

    def _allocate(self, grant: RunGrant, model_id: str, salt: bytes, account: RunAccount,
                  on_tool: ToolStarted | None) -> _Allocation:
        """The run's account, its two tool wrappers and its metered model."""
        bindings = self._bindings(grant)
        by_name = {b.name: b for b in bindings}
        metered = MeteredToolset(build_toolset(bindings), by_name, account, self.audit, salt,
                                 on_start=on_tool)
        authorised = AuthorisedToolset(metered, by_name, grant.plan.capabilities,
                                       grant.authorizer, self.locator, self.audit, salt)
        model = MeteredModel(self.models.get(model_id), account, price_for(model_id),
                             self.settings.default_max_tokens)
        return _Allocation(grant, model_id, salt, account, authorised, model)

    async def _execute(self, run: _Allocation, prompt: str | None,
                       history: list[ModelMessage], encoder: HistoryEncoder) -> RunOutcome:
        """One allocation of the run, from its first call to its closing transaction."""
        ctx = run.grant.ctx
        with bound(ctx):
            ending: Ending
            try:
                answer = await self._loop(run, prompt, history, encoder)
            except BudgetExceeded as exc:
                log.info("run halted", ceiling=exc.ceiling, limit=exc.limit, used=exc.used)
                ending = Ending("halted", halt={"ceiling": exc.ceiling, "limit": exc.limit,
                                                "used": exc.used, "message": str(exc)})
            except ToolUnconfirmed as exc:
                log.warning("run halted for a person", capability=exc.capability)
                ending = Ending("halted", halt={"ceiling": "unconfirmed_tool", "limit": 0,
                                                "used": 0, "capability": exc.capability,
                                                "message": str(exc)})
            except (ModelFailed, ToolError, RunError) as exc:
                log.warning("run failed", error=str(exc))
                ending = Ending("failed", error=str(exc))
            except Exception as exc:
                log.exception("run failed unexpectedly")
                ending = Ending("failed", error=f"{type(exc).__name__}: {exc}")
            else:
                ending = Ending("completed", answer=answer)
            ending.refused = tuple(run.authorised.refused)
            ending.walltime_ms = int((time.monotonic() - run.started) * 1000)
            usage = await self.db.run(finish_run, ctx, self.audit, ending, run.salt)
        return RunOutcome(
            run_id=ctx.run_id, tenant_id=ctx.tenant_id, status=ending.status,
            model=run.model_id, answer=ending.answer, halt=ending.halt, error=ending.error,
            usage=usage, refused_tools=ending.refused,
        )

    async def _loop(self, run: _Allocation, prompt: str | None, history: list[ModelMessage],
                    encoder: HistoryEncoder) -> str:
        """Step through the run, writing a checkpoint after every response that calls tools."""
        ctx, meter = run.grant.ctx, run.account.meter
        async with self._agent.iter(
            prompt, deps=ctx, model=run.model, message_history=history or None,
            toolsets=[run.authorised],
            model_settings={"max_tokens": self.settings.default_max_tokens},
        ) as agent_run:
            step = 0
            async for node in agent_run:
                calls = [part for part in node.model_response.parts
                         if isinstance(part, ToolCallPart)] \
                    if Agent.is_call_tools_node(node) else []
                if not calls:
                    # The final answer needs no checkpoint: its settlement holds it, and
                    # a resume replays it from there.
                    continue
                step += 1
                await self.db.run(
                    save_checkpoint, ctx, step_index=step,
                    history=encoder.encode(agent_run.all_messages()),
                    usage={"tokens": meter.tokens, "tool_calls": meter.tool_calls,
                           "cost_microcents": meter.cost_microcents},
                )
                for part in calls:
                    if part.tool_name not in run.authorised.bindings:
                        await self._refuse_unresolved(run, part)
            assert agent_run.result is not None
            return agent_run.result.output

    async def _refuse_unresolved(self, run: _Allocation, part: ToolCallPart) -> None:
        """A call to a tool this run never offered: audit it, and say why it was not offered.

        pydantic-ai answers the model itself ("unknown tool"), and the run goes on.
        """
        capability = part.tool_name.replace("__", ".")
        grant = run.grant
        if capability not in self.registry:
            reason = "not_resolved"
        elif capability not in grant.plan.capabilities:
            reason = "not_licensed"
        elif capability not in grant.ctx.scope:
            reason = "forbidden"
        else:
            reason = "not_resolved"
        refusal = ToolRefused(capability, reason, f"{capability!r} was not offered to this run")
        run.authorised.refused.append((capability, reason))
        await audit_refusal(self.audit, grant.ctx, refusal, part.args_as_dict(), run.salt)

    async def _history(self, grant: RunGrant, conversation_id: str) -> list[ModelMessage]:
        """The conversation's latest turns, as the model's message history."""
        turns = await self.db.run(conversation_window, grant.ctx, conversation_id,
                                  self.settings.history_window)
        return [
            ModelRequest(parts=[UserPromptPart(turn.text)]) if turn.role == "user"
            else ModelResponse(parts=[TextPart(turn.text)])
            for turn in turns
        ]

    async def get(self, grant: RunGrant, run_id: str) -> RunRecord:
        """A run of the grant's tenant."""
        return await self.db.run(get_run, grant.ctx.tenant_id, run_id)
