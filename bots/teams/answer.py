"""Turning a Teams request into a run, and a run's outcome back into its conversation.

Everything here but the card actions' first answer happens in an executor job, after
Teams has had its HTTP answer: claiming the activity id (a retried activity never
starts a second run), resolving the organisation's onboarding record, the principal
and its roles (``member`` of a linked organisation, plus the tenant's grants), opening the context,
and posting. Posting continues the conversation from its stored reference through
the SDK's adapter, with the bot's outbound token; in a 1:1 chat the answer streams
through the SDK's ``StreamingResponse``, elsewhere it is one message. A request
whose run has not started by shutdown is recorded as a ``queued`` run, which the next
start resumes and ``deliver`` posts into the same conversation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from microsoft_agents.activity import ConversationReference
from microsoft_agents.hosting.core import ChannelServiceAdapter, ClaimsIdentity, TurnContext
from microsoft_agents.hosting.core.app.streaming import StreamingResponse
from microsoft_agents.hosting.core.app.typing_indicator import TypingIndicator, TypingOptions

from bots.executor import Executor
from bots.runner import queue_resume
from bots.runtime import Runtime
from bots.standing import tenant_standing
from bots.teams import render
from bots.teams.answer_message import Streamed, after_stream, message
from bots.teams.listeners import TeamsRequest
from core.agent import RunOutcome
from core.audit import events
from core.authz import roles_of
from core.builder import RunGrant
from core.errors import Conflict, NotFound, RunRefused
from core.logs import log
from core.runs import get_run
from installs.links import InstallLinkError
from installs.teams_conversations import (
    conversation_reference,
    first_activity,
    forget_activities_before,
    remember_conversation,
)
from installs.teams_links import (
    TeamsLink,
    check_link_code,
    record_pending,
    redeem_link_code,
    resolve_teams,
    revoke_teams,
)

ADMIN_ROLES = frozenset({"owner", "admin"})
MEMBER_ROLES = frozenset({"member"})
"""What Teams vouches for: the person belongs to the linked organisation. Anything more
(admin, a licence to a tool) comes from the tenant's grants."""
ACTIVITIES_KEPT = timedelta(days=1)
"""How long a claimed activity id is remembered: Teams retries within minutes."""
PRUNE_EVERY = 500
TYPING = TypingOptions(initial_delay_ms=0, interval_ms=3000)
"""Typing at once when a run starts, and again every 3 s: Teams shows it for about that."""

Work = Callable[[TurnContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A request that passed every check: ready to run."""

    grant: RunGrant
    request: TeamsRequest


class TeamsDelivery:
    """Posts into stored conversations without a request: what a worker process needs of
    the Teams transport (and what every reply of ``TeamsAnswers`` goes through)."""

    def __init__(self, runtime: Runtime, adapter: ChannelServiceAdapter, app_id: str) -> None:
        self.runtime = runtime
        self.adapter = adapter
        self.app_id = app_id

    async def continue_in(self, reference: dict[str, Any], work: Work) -> None:
        """Continue the conversation of ``reference`` (with the bot's outbound token) and
        let ``work`` post into it."""
        continuation = ConversationReference.model_validate(reference).get_continuation_activity()
        if not self.app_id:  # anonymous mode (local development): replies carry no token
            await self.adapter.continue_conversation_with_claims(ClaimsIdentity(), continuation,
                                                                 work)
            return
        await self.adapter.continue_conversation(self.app_id, continuation, work)

    async def post(self, reference: dict[str, Any], work: Work) -> bool:
        """``continue_in``, for a short reply whose failure is only logged.

        A conversation the bot can no longer write to (removed from the team, the
        Bot Connector refusing) is not raised: there is nobody left to tell.
        """
        try:
            await self.continue_in(reference, work)
        except Exception as exc:
            log.warning("teams conversation not reachable", error=f"{type(exc).__name__}: "
                        f"{str(exc)[:160]}")
            return False
        return True

    async def say(self, reference: dict[str, Any], text: str,
                  card: dict[str, Any] | None = None) -> bool:
        """Post one message (and a card under it) into the conversation of ``reference``."""
        async def send(context: TurnContext) -> None:
            await context.send_activity(message(text, card))
        return await self.post(reference, send)

    async def deliver(self, outcome: RunOutcome) -> None:
        """Post the outcome of a run resumed without a Teams request (a restart, a worker).

        Runs that were not asked in Teams have no conversation here and are left alone.
        """
        try:
            record = await self.runtime.db.run(get_run, outcome.tenant_id, outcome.run_id)
        except NotFound:
            return
        key = record.conversation_id or ""
        if not key.startswith("teams:"):
            return
        conversation_id = key.split(":", 2)[2]
        reference = await self.runtime.db.run(conversation_reference, outcome.tenant_id,
                                              conversation_id)
        if reference is None:
            log.info("no conversation to deliver a resumed run", run_id=outcome.run_id)
            return
        reply = render.outcome(outcome)
        await self.say(reference, reply.text, reply.card)


class TeamsAnswers(TeamsDelivery):
    """Runs Teams requests and renders their outcomes."""

    def __init__(self, runtime: Runtime, executor: Executor, adapter: ChannelServiceAdapter,
                 app_id: str) -> None:
        super().__init__(runtime, adapter, app_id)
        self.executor = executor
        self._claims = 0

    def submit(self, request: TeamsRequest) -> None:
        """Hand a request to the executor: accept it, then run it (or park it at shutdown).

        The run goes to the runtime's runner: executed here, or queued for the workers,
        whose ``deliver`` posts the outcome into the conversation.
        """
        accepted: Accepted | None = None

        async def job() -> None:
            nonlocal accepted
            accepted = await self._accept(request)
            if accepted is None:
                return
            ready = accepted

            async def execute() -> None:
                await self._run(ready)

            await self.runtime.runner.run(ready.grant, request.text,
                                          conversation_id=request.conversation_key,
                                          execute=execute)

        async def park() -> None:
            ready = accepted or await self._accept(request)
            if ready is not None:
                await self.runtime.runner.queue(ready.grant, request.text,
                                                conversation_id=request.conversation_key)

        self.executor.submit(f"teams:{request.activity_id}", job, park=park)

    async def _claim(self, request: TeamsRequest) -> bool:
        db = self.runtime.db
        if not await db.run(first_activity, request.activity_id, request.entra_tenant_id,
                            request.conversation_id):
            log.info("duplicate Teams activity dropped", activity_id=request.activity_id)
            return False
        self._claims += 1
        if self._claims % PRUNE_EVERY == 0:
            await db.run(forget_activities_before, ACTIVITIES_KEPT)
        return True

    async def _served(self, request: TeamsRequest) -> TeamsLink | None:
        """The active link serving the request, or ``None`` after telling the person why."""
        link = await self.runtime.db.run(resolve_teams, request.entra_tenant_id)
        if link is not None and link.active and link.tenant_id is not None:
            await self.runtime.db.run(remember_conversation, link.tenant_id,
                                      request.entra_tenant_id, request.conversation_id,
                                      request.reference)
            return link
        reason = "link_revoked" if link is not None and link.status == "revoked" else "not_linked"
        if link is not None and link.tenant_id is not None:
            await self.runtime.audit.record(link.tenant_id, events.RUN_REFUSED, {
                "principal": request.principal, "reason": reason,
                "correlation_id": request.activity_id,
            })
        log.info("request from an unlinked Teams organisation refused",
                 entra_tenant_id=request.entra_tenant_id, reason=reason)
        await self.say(request.reference, render.refusal(reason))
        return None

    async def _is_admin(self, tenant_id: str, principal: str) -> bool:
        return bool(ADMIN_ROLES & set(await self.runtime.db.run(roles_of, tenant_id, principal)))

    async def _accept(self, request: TeamsRequest) -> Accepted | None:
        """Everything before the run; ``None`` when the request ends here (after a reply)."""
        if not await self._claim(request):
            return None
        if request.command == "link":
            await self._link(request)
            return None
        link = await self._served(request)
        if link is None or link.tenant_id is None:
            return None
        if request.command == "help" or (request.command == "ask" and not request.text):
            await self.say(request.reference, render.help_text())
            return None
        if request.command in ("budget", "audit"):
            # ``audit`` verifies the log at once for an admin; a member sees the month.
            await self.standing(request, link.tenant_id, verify=request.command == "audit")
            return None
        try:
            grant = await self.runtime.agent.open(
                tenant_id=link.tenant_id, principal_id=request.principal,
                extra_roles=set(MEMBER_ROLES),
                correlation_id=request.activity_id, initiator="user")
        except RunRefused as refused:
            await self.say(request.reference, render.refusal(refused.reason))
            return None
        except NotFound:
            await self.say(request.reference, render.refusal("not_linked"))
            return None
        return Accepted(grant=grant, request=request)

    async def _run(self, accepted: Accepted) -> None:
        """Run in the conversation: typing while it works, the answer streamed in 1:1."""
        request, grant = accepted.request, accepted.grant

        async def work(context: TurnContext) -> None:
            stream = StreamingResponse(context) if request.surface == "personal" else None
            streamed = Streamed(stream)
            async with TypingIndicator(context, typing_options=TYPING):
                try:
                    outcome = await self.runtime.agent.start(
                        grant, request.text, conversation_id=request.conversation_key,
                        on_text=streamed.text)
                except RunRefused as refused:
                    await streamed.finish(context, render.refusal(refused.reason))
                    return
                except Exception:
                    await streamed.finish(context, render.failure())
                    raise
            reply = render.outcome(outcome)
            await streamed.finish(context, reply.text, reply.card,
                                  after=after_stream(outcome, reply))

        # A run that fails is the executor's to log, with its traceback.
        await self.continue_in(request.reference, work)

    async def _link(self, request: TeamsRequest) -> None:
        """``link CODE``: an admin of the Tenantry account binds this organisation to it."""
        if request.surface != "personal":
            await self.say(request.reference, render.link_failed("not_personal"))
            return
        code = request.text.split()[0] if request.text.split() else ""
        keyring, db = self.runtime.keyring, self.runtime.db
        try:
            tenant_id = await db.run(check_link_code, keyring, code)
            if not await self._is_admin(tenant_id, request.principal):
                await self.say(request.reference, render.link_failed("not_admin")
                               + "\n\n" + render.principal_line(request.principal))
                return
            before = await db.run(resolve_teams, request.entra_tenant_id)
            if before is not None and before.active and before.tenant_id == tenant_id:
                await self.say(request.reference, render.link_failed("already_linked"))
                return
            await db.run(redeem_link_code, self.runtime.audit, keyring, code,
                         request.entra_tenant_id, request.principal)
        except InstallLinkError as refused:
            await self.say(request.reference, render.link_failed(refused.reason))
            return
        except Conflict:
            await self.say(request.reference, render.link_failed("conflict"))
            return
        await db.run(remember_conversation, tenant_id, request.entra_tenant_id,
                     request.conversation_id, request.reference)
        standing = await tenant_standing(self.runtime, tenant_id=tenant_id,
                                         principal_id=request.principal, is_admin=True)
        await self.say(request.reference, render.linked(standing.tenant_name))

    async def standing(self, request: TeamsRequest, tenant_id: str, *,
                       verify: bool = False) -> None:
        """Post the person's view of the tenant's month; with ``verify``, an admin's check."""
        is_admin = await self._is_admin(tenant_id, request.principal)
        standing = await tenant_standing(self.runtime, tenant_id=tenant_id,
                                         principal_id=request.principal, is_admin=is_admin)
        verified = await self.runtime.audit.verify(tenant_id) if verify and is_admin else None
        await self.say(request.reference, "", render.standing_card(standing, verified=verified))

    def installed(self, entra_tenant_id: str, activity_id: str,
                  reference: dict[str, Any]) -> None:
        """The app was added to a team, chat or a person's scope: note the organisation."""
        conversation_id = str(reference["conversation"]["id"])

        async def job() -> None:
            if not await self.runtime.db.run(first_activity, activity_id, entra_tenant_id,
                                             conversation_id):
                return
            link = await self.runtime.db.run(record_pending, entra_tenant_id)
            if link.active and link.tenant_id is not None:
                await self.runtime.db.run(remember_conversation, link.tenant_id, entra_tenant_id,
                                          conversation_id, reference)
                await self.say(reference, render.help_text())
                return
            log.info("teams organisation pending", entra_tenant_id=entra_tenant_id)
            await self.say(reference, render.installed_pending())

        self.executor.submit(f"teams:{activity_id}", job, park=job)

    def uninstalled(self, entra_tenant_id: str, activity_id: str, conversation_id: str) -> None:
        """The app was removed: the link is revoked (audited), data kept until a purge."""
        async def job() -> None:
            if not await self.runtime.db.run(first_activity, activity_id, entra_tenant_id,
                                             conversation_id):
                return
            link = await self.runtime.db.run(revoke_teams, self.runtime.audit, entra_tenant_id,
                                             "uninstalled")
            log.info("teams app removed", entra_tenant_id=entra_tenant_id,
                     tenant_id=None if link is None else link.tenant_id)

        # Forgetting is short and must happen even if shutdown comes first: its own park.
        self.executor.submit(f"teams:{activity_id}", job, park=job)

    async def resume_pressed(self, request: TeamsRequest, run_id: str) -> dict[str, Any]:
        """The Resume action: only the run's principal or a tenant admin; once.

        Answered at once with the card that replaces the pressed one; the resumed run
        posts its outcome into the conversation from the executor, or, where the
        deployment has workers, from the worker that resumes it.
        """
        link = await self.runtime.db.run(resolve_teams, request.entra_tenant_id)
        if link is None or not link.active or link.tenant_id is None:
            return render.invoke_reply(render.refusal("not_linked"))
        tenant_id = link.tenant_id
        try:
            record = await self.runtime.db.run(get_run, tenant_id, run_id)
        except NotFound:
            return render.invoke_reply(render.already_resumed())
        if not (record.principal_id == request.principal
                or await self._is_admin(tenant_id, request.principal)):
            return render.invoke_reply(render.resume_denied())
        # The resumed run acts as it was asked: its own principal and roles, never the presser's.
        jobs = self.runtime.jobs
        try:
            grant = await self.runtime.agent.reopen(tenant_id, run_id)
            if jobs is not None:
                # A worker resumes it and posts its outcome here (``TeamsDelivery.deliver``).
                await queue_resume(self.runtime.agent, jobs, tenant_id, run_id,
                                   by=request.principal)
            elif not await self.runtime.agent.claim(grant):
                raise Conflict("already resumed")
        except (RunRefused, Conflict, NotFound) as exc:
            log.info("resume not started", run_id=run_id, reason=str(exc))
            return render.invoke_reply(render.already_resumed())
        if jobs is not None:
            return render.invoke_reply(render.resume_started())

        async def job() -> None:
            async with self.executor.slot(tenant_id):
                outcome = await self.runtime.agent.resume(grant)
            reply = render.outcome(outcome)
            await self.say(request.reference, reply.text, reply.card)

        self.executor.submit(f"resume:{run_id}", job)
        return render.invoke_reply(render.resume_started())

    async def verify_pressed(self, request: TeamsRequest) -> dict[str, Any]:
        """The Verify action: an admin's check of the whole log, posted when done."""
        link = await self.runtime.db.run(resolve_teams, request.entra_tenant_id)
        if link is None or not link.active or link.tenant_id is None:
            return render.invoke_reply(render.refusal("not_linked"))
        tenant_id = link.tenant_id
        if not await self._is_admin(tenant_id, request.principal):
            return render.invoke_reply(render.verify_denied())

        async def job() -> None:
            await self.standing(request, tenant_id, verify=True)

        self.executor.submit(f"verify:{request.activity_id}", job)
        return render.invoke_reply(render.verify_started())
