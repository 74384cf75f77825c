"""The agent loop: one run of the model with its tools, metered, audited, resumable.

``AgentService.open`` derives a run's context (or refuses it, audited);
``AgentService.start`` and ``AgentService.resume`` are the only ways a model's run
executes; ``AgentService.call_tool`` runs one tool asked for directly (``core.direct``).
What a run writes, and where:

- ``start`` / ``resume``: the run's record and its ``run.started`` event, one
  transaction (``core.run_records``);
- before every model or tool call: its reservation (``core.budget.account``);
- after a model response: its settlement, with the response to replay
  (``core.metered_model``), then the checkpoint (here, ``_loop``); a started run
  given ``on_text`` streams the response's text to it as the model generates it,
  through the same metered call;
- after a tool returns: its effect, settlement and ``tool.invoked`` event
  (``core.toolset``);
- at the end: totals, conversation turns and the closing event, one transaction
  (``core.run_records``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_core import ValidationError
from sqlalchemy.engine import Connection

from core import direct
from core.allocation import Allocation, Wiring, allocate, first_call_refusal, unoffered_reason
from core.audit import events
from core.audit.events import AuditError
from core.audit.log import AuditLog
from core.budget.account import RunAccount
from core.budget.ledger import UsageSummary, summary
from core.budget.meter import RunMeter
from core.builder import RunGrant, build_context
from core.checkpoints import HistoryEncoder, save_checkpoint
from core.context import Initiator, PrincipalKind, TenantContext
from core.db.engine import Database, reads
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
from core.models import ModelFactory
from core.outcome import RunOutcome as RunOutcome  # named from here by the transports
from core.resources import ResourceLocator
from core.run_records import Ending, finish_run, request_resume, resume_run, start_run
from core.runs import Lease, RunRecord, claim_run, create_run, get_run, release_run
from core.settings import Settings
from core.tools import CapabilityRegistry
from core.toolset import (
    ToolStarted,
    audit_refusal,
)

LEASE_MARGIN_S = 60
"""How much longer than its walltime ceiling a process holds a run it executes."""

INSTRUCTIONS = (
    "You are Tenantry, an assistant working inside a customer's workspace. Use only the "
    "tools you are given; answer briefly and say when you do not know."
)


class RunObserver(Protocol):
    """Told when an allocation of a run starts and how it ended (operators' metrics).

    Called inline on the event loop: an observer only counts, it never waits.
    """

    def started(self, ctx: TenantContext) -> None:
        """An allocation of ``ctx.run_id`` starts executing."""

    def finished(self, outcome: RunOutcome, seconds: float) -> None:
        """It ended with ``outcome`` after ``seconds``."""


TextStreamed = Callable[[int, str], Awaitable[None]]
"""Told ``(response, text)`` as a model generates text: the response's number in this
run (from 1; a new number means a new response, whose text follows the earlier one's
rather than continuing it), and the next piece of its text."""


def _text_of(event: object) -> str:
    """The text a stream event adds, if any."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""


@reads
def _recorded(conn: Connection, tenant_id: str, run_id: str) -> tuple[RunRecord, UsageSummary]:
    return get_run(conn, tenant_id, run_id), summary(conn, tenant_id, run_id)


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
        self.wiring = Wiring(self.registry, audit, self.locator, settings.default_max_tokens)
        self.worker = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        """Who holds the leases of the runs this service executes (``core.runs.Lease``)."""
        self.observers: list[RunObserver] = []
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

    async def reopen(self, tenant_id: str, run_id: str) -> RunGrant:
        """A fresh allocation for an existing run, as it was asked: the same principal,
        initiator, correlation id and vouched roles, with the tenant's policy of now.

        Raises:
            NotFound: the run does not exist in this tenant.
            RunRefused: suspended tenant or spent allowance; audited.
        """
        record = await self.db.run(get_run, tenant_id, run_id)
        return await self.open(
            tenant_id=tenant_id, principal_id=record.principal_id,
            principal_kind=cast(PrincipalKind, record.principal_kind),
            initiator=cast(Initiator, record.initiator), correlation_id=record.correlation_id,
            extra_roles=record.granted_roles, run_id=run_id,
        )

    async def claim(self, grant: RunGrant) -> bool:
        """Lease an unfinished run to this service before resuming it; ``False`` if another
        process (or an earlier press of a button here) holds it."""
        return await self.db.run(claim_run, grant.ctx, self.lease(grant))

    def lease(self, grant: RunGrant) -> Lease:
        """A lease on ``grant``'s run for this service that outlives the allocation: its
        walltime ceiling, plus a margin."""
        seconds = grant.ctx.budget.walltime_ceiling_ms / 1000 + LEASE_MARGIN_S
        return Lease(self.worker, datetime.now(UTC) + timedelta(seconds=seconds))

    async def start(
        self,
        grant: RunGrant,
        prompt: str,
        *,
        model: str | None = None,
        conversation_id: str | None = None,
        history: Sequence[ModelMessage] = (),
        on_tool: ToolStarted | None = None,
        on_text: TextStreamed | None = None,
    ) -> RunOutcome:
        """Record and execute a new run under ``grant``.

        Args:
            conversation_id: Continues that conversation of the principal: its latest
                turns (``settings.history_window``) are shown to the model, and this
                run's prompt and answer are added to it.
            on_tool: Told each tool call's capability as it starts (a status line).
            on_text: Told the model's text as it is generated (see ``TextStreamed``).
                The answer is the text of the last response; partial text is not
                audited, only the final answer's digest.

        Raises:
            RunRefused: ``allowance_exhausted`` or ``run_ceiling_too_small``: the run's
                budget cannot pay even its first model call; nothing is recorded but
                the refusal, in the audit log.
            Conflict: ``grant`` names a run id that exists already (a derived id, as a
                digest's firing has, arriving twice); nothing is recorded.
        """
        model_id = self.models.check(model or self.settings.model)
        if conversation_id is not None and not history:
            history = await self._history(grant, conversation_id)
        first = [*history,
                 ModelRequest(parts=[UserPromptPart(prompt)], instructions=INSTRUCTIONS)]
        refused = first_call_refusal(self.registry, grant, model_id, first)
        if refused is not None:
            await self.audit.record(grant.ctx.tenant_id, events.RUN_REFUSED, {
                "principal": grant.ctx.principal_id, "reason": refused.reason,
                "correlation_id": grant.ctx.audit.correlation_id,
            })
            raise refused
        salt = await self.db.run(start_run, grant.ctx, self.audit, prompt=prompt,
                                 model=model_id, conversation_id=conversation_id,
                                 roles=grant.extra_roles, lease=self.lease(grant))
        allocation = allocate(self.wiring, grant, self.models.get(model_id), model_id, salt,
                              RunAccount(self.db, grant.ctx, RunMeter(grant.ctx), grant.plan,
                                         grant.period), on_tool)
        return await self._execute(allocation, prompt, list(history), HistoryEncoder(),
                                   on_text)

    async def call_tool(self, grant: RunGrant, capability: str,
                        arguments: dict[str, Any]) -> RunOutcome:
        """One tool call asked for directly (an MCP client's ``tools/call``), as a run of
        one step, recorded and audited like any run (``core.direct.call_tool``).

        It completes with the tool's result, or is ``refused``, ``halted`` at a ceiling,
        or ``failed``; a process that dies during it leaves it to ``resume`` to end.
        """
        return await direct.call_tool(self, grant, capability, arguments)

    async def queue(self, grant: RunGrant, prompt: str, *,
                    conversation_id: str | None = None) -> None:
        """Record a request accepted under ``grant`` whose run has not started, as ``queued``.

        For a transport shutting down with requests not yet run: the next start resumes
        it (``resume``) as it was asked, with its principal, roles and conversation.
        """
        await self.db.run(create_run, grant.ctx, prompt=prompt,
                          model=self.models.check(self.settings.model), status="queued",
                          conversation_id=conversation_id, granted_roles=grant.extra_roles)
        log.info("request queued for the next start", run_id=grant.ctx.run_id,
                 tenant_id=grant.ctx.tenant_id)

    async def request_resume(self, tenant_id: str, run_id: str, *, by: str) -> None:
        """Put a halted run back as ``queued``, audited as asked for by ``by``: for a
        deployment whose workers execute runs, a Resume pressed in a web process is then
        resumed by a worker (``resume``, audited as a resumption, not a first start).

        Raises:
            NotFound: the run does not exist in this tenant.
            Conflict: it is not halted any more (another press came first), or is a
                halted direct call.
        """
        await self.db.run(request_resume, self.audit, tenant_id, run_id, by=by)
        log.info("halted run queued to resume", run_id=run_id, tenant_id=tenant_id)

    async def resume(self, grant: RunGrant, *, on_tool: ToolStarted | None = None) -> RunOutcome:
        """Continue ``grant.ctx.run_id`` from its checkpoint with the grant's fresh budget.

        A ``queued`` run (recorded but never started, as a transport parks a request at
        shutdown) starts here for the first time: it is audited as started, not as a
        second attempt; one queued again after a halt (``request_resume``) is resumed.
        A run without a checkpoint starts from its prompt, with its conversation's
        history as ``start`` gives it. A direct call left ``running`` by
        a process that died during it is ended ``failed``, its tool not called again
        (``core.direct.end_interrupted``).

        Raises:
            NotFound: the run does not exist in this tenant.
            CheckpointError: its checkpoint is another tenant's or corrupt.
            Conflict: the run already ended, is a halted direct call, or another
                process holds its lease.
        """
        resumed = await self.db.run(resume_run, grant.ctx, self.audit, self.lease(grant))
        record, checkpoint = resumed.record, resumed.checkpoint
        capability = record.detail.get("direct")
        if capability is not None:
            # Its process died during the call: a model must not take "call <capability>"
            # for a question, nor may the tool's effect be applied twice.
            return await direct.end_interrupted(self, grant, resumed, str(capability))
        account = RunAccount(self.db, grant.ctx, RunMeter(grant.ctx), grant.plan, grant.period,
                             resumed.replay)
        allocation = allocate(self.wiring, grant, self.models.get(record.model), record.model,
                              resumed.salt, account, on_tool)
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

    async def outcome(self, tenant_id: str, run_id: str) -> RunOutcome:
        """The outcome a run recorded when its last allocation ended, as ``start`` or
        ``resume`` returned it: for delivering it again where that was interrupted.

        Raises:
            NotFound: the run does not exist in this tenant.
        """
        record, usage = await self.db.run(_recorded, tenant_id, run_id)
        refused = tuple((str(c), str(r)) for c, r in record.detail.get("refused_tools", ()))
        return RunOutcome(
            run_id=record.id, tenant_id=record.tenant_id, status=record.status,
            model=record.model, answer=record.answer, halt=record.detail.get("halt"),
            error=record.detail.get("error"), usage=usage, refused_tools=refused,
        )

    async def _execute(self, run: Allocation, prompt: str | None,
                       history: list[ModelMessage], encoder: HistoryEncoder,
                       on_text: TextStreamed | None = None) -> RunOutcome:
        """One allocation of the run, from its first call to its closing transaction."""
        ctx = run.grant.ctx
        for observer in self.observers:
            observer.started(ctx)
        with bound(ctx):
            ending: Ending
            try:
                answer = await self._loop(run, prompt, history, encoder, on_text)
            except BudgetExceeded as exc:
                log.info("run halted", ceiling=exc.ceiling, limit=exc.limit, used=exc.used)
                ending = Ending.halted(exc)
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
            except asyncio.CancelledError:
                # Stopped for later (a shutdown): the run stays where it is, free to resume.
                await asyncio.shield(self.db.run(release_run, ctx, self.worker))
                raise
            else:
                ending = Ending("completed", answer=answer)
            ending.refused = tuple(run.authorised.refused)
            ending.walltime_ms = int((time.monotonic() - run.started) * 1000)
            usage = await self.db.run(finish_run, ctx, self.audit, ending, run.salt)
            await self.sign_head(ctx.tenant_id)
        outcome = RunOutcome(
            run_id=ctx.run_id, tenant_id=ctx.tenant_id, status=ending.status,
            model=run.model_id, answer=ending.answer, halt=ending.halt, error=ending.error,
            usage=usage, refused_tools=ending.refused,
        )
        for observer in self.observers:
            observer.finished(outcome, ending.walltime_ms / 1000)
        return outcome

    async def sign_head(self, tenant_id: str) -> None:
        """Sign the tenant's head: the run's events are vouched for as soon as it ends.

        A head that cannot be signed is logged for a person; the run's outcome stands.
        """
        try:
            await self.audit.sign_checkpoint(tenant_id)
        except AuditError as exc:
            log.error("audit log not signed", error=str(exc))

    async def _loop(self, run: Allocation, prompt: str | None, history: list[ModelMessage],
                    encoder: HistoryEncoder, on_text: TextStreamed | None) -> str:
        """Step through the run, writing a checkpoint after every response that calls tools."""
        ctx, meter = run.grant.ctx, run.account.meter
        async with self._agent.iter(
            prompt, deps=ctx, model=run.model, message_history=history or None,
            toolsets=[run.authorised],
            model_settings={"max_tokens": self.settings.default_max_tokens},
        ) as agent_run:
            step = responses = 0
            async for node in agent_run:
                if on_text is not None and Agent.is_model_request_node(node):
                    responses += 1
                    async with node.stream(agent_run.ctx) as streamed:
                        async for event in streamed:
                            text = _text_of(event)
                            if text:
                                await on_text(responses, text)
                    continue
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

    async def _refuse_unresolved(self, run: Allocation, part: ToolCallPart) -> None:
        """A call to a tool this run never offered: audit it, and say why it was not offered.

        pydantic-ai answers the model itself ("unknown tool"), and the run goes on.
        """
        capability = part.tool_name.replace("__", ".")
        grant = run.grant
        reason = unoffered_reason(self.registry, grant, capability)
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
