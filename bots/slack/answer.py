"""Turning a Slack request into a run, and a run's outcome back into the thread.

Everything here happens after the acknowledgement, inside an executor job: claiming
the event id (Slack's retries never start a second run), resolving the link, the
principal and its roles (``users.info``, fresh for every run), opening the context,
and posting. A run's answer lives in one message (``AnswerMessage``) whose ts is stored
with the run, so a resumed run edits that message instead of posting again. A request
whose run has not started by shutdown is recorded as a ``queued`` run, which the next
start resumes into that same message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NamedTuple

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.executor import Executor
from bots.runner import RUN_JOB
from bots.runtime import Runtime
from bots.slack import render
from bots.slack.answer_message import AnswerMessage
from bots.slack.clients import WorkspaceClients
from bots.slack.home import publish_home, verify_view_section
from bots.slack.records import (
    RunMessage,
    first_delivery,
    forget_events_before,
    remember_run,
    run_message,
)
from core.admin import Admin
from core.agent import RunOutcome
from core.audit import events
from core.authz import roles_of
from core.builder import RunGrant
from core.digests.records import get_digest
from core.errors import Conflict, NotFound, RunRefused
from core.logs import log
from core.runs import get_run
from installs.links import Link, resolve
from installs.principals import roles_from_slack, slack_principal

Surface = Literal["command", "mention", "dm"]

EVENTS_KEPT = timedelta(days=1)
"""How long a claimed event id is remembered: Slack's last retry comes minutes after."""

PRUNE_EVERY = 500
"""Claimed event ids between two prunings of the older ones."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Which installation a request came through, and who sent it.

    Attributes:
        enterprise_id, team_id, is_enterprise_install: The installation (and so the
            link and the token); ``team_id`` is ``None`` for an org-wide install.
        user_team: The workspace the acting user belongs to, part of the principal id.
        user_id: The acting Slack user.
    """

    enterprise_id: str | None
    team_id: str | None
    is_enterprise_install: bool
    user_team: str
    user_id: str

    @property
    def key(self) -> str:
        """The installation as one string, as the event claim records it."""
        return self.team_id or self.enterprise_id or ""

    @property
    def principal(self) -> str:
        """The principal id of the acting user."""
        return slack_principal(self.user_team, self.user_id)


@dataclass(frozen=True, slots=True)
class Request:
    """One Slack request, reduced to what a run needs."""

    origin: Origin
    surface: Surface
    channel: str
    thread_ts: str | None
    event_id: str
    prompt: str
    told: bool = False
    """Whether the acknowledgement already told the person why it is refused."""

    def conversation_id(self, thread_ts: str | None) -> str:
        """Channel plus thread: a follow-up in the thread continues the conversation."""
        return f"slack:{self.origin.user_team}:{self.channel}:{thread_ts or 'main'}"


@dataclass(frozen=True, slots=True)
class Accepted:
    """A request that passed every check, its answer message open: ready to run."""

    grant: RunGrant
    answer: AnswerMessage
    conversation: str


class _Served(NamedTuple):
    client: AsyncWebClient
    link: Link
    roles: set[str]
    is_admin: bool


class SlackDelivery:
    """Renders the outcome of a run into its answer message, without a request: what a
    worker process needs of the Slack transport."""

    def __init__(self, runtime: Runtime, clients: WorkspaceClients) -> None:
        self.runtime = runtime
        self.clients = clients

    async def deliver(self, outcome: RunOutcome) -> None:
        """Finish the answer message of a run resumed without a Slack request (a restart,
        a worker). Editing the one message it has, this can safely happen twice.

        Runs that were not started from Slack have no message and are left alone.
        """
        message = await self.runtime.db.run(run_message, outcome.tenant_id, outcome.run_id)
        if message is None or message.answer_ts is None:
            return
        link_org = message.enterprise_id or None
        try:
            client = await self.clients.for_workspace(link_org, message.team_id, False)
        except NotFound:
            log.info("no installation to deliver a resumed run", run_id=outcome.run_id)
            return
        answer = AnswerMessage(client, message.channel, message.answer_ts)
        await answer.finish(render.outcome(outcome))


class SlackAnswers(SlackDelivery):
    """Runs Slack requests and renders their outcomes."""

    def __init__(self, runtime: Runtime, clients: WorkspaceClients, executor: Executor,
                 command: str) -> None:
        super().__init__(runtime, clients)
        self.executor = executor
        self.command = command
        self._claims = 0

    async def _roles(self, client: AsyncWebClient, user_id: str) -> set[str]:
        """Slack's own admin/owner flags for this user, read now (never cached)."""
        try:
            info = await client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("users.info failed; no Slack roles", error=str(exc.response.get("error")))
            return set()
        user = info.get("user")
        return roles_from_slack(user) if isinstance(user, dict) else set()

    async def _client(self, origin: Origin) -> AsyncWebClient | None:
        try:
            return await self.clients.for_workspace(origin.enterprise_id, origin.team_id,
                                                    origin.is_enterprise_install)
        except NotFound:
            log.info("slack request from a workspace without installation dropped",
                     team_id=origin.team_id, enterprise_id=origin.enterprise_id)
            return None

    async def _served(self, origin: Origin) -> _Served | None:
        """Who is asking, through which installation and link; ``None`` if either is gone.

        Admin status comes from Slack's flags plus the tenant's grants, never the payload.
        """
        client = await self._client(origin)
        link = await self.link(origin)
        if client is None or link is None or not link.active:
            return None
        roles = await self._roles(client, origin.user_id)
        granted = set(await self.runtime.db.run(roles_of, link.tenant_id, origin.principal))
        return _Served(client, link, roles, bool({"owner", "admin"} & (roles | granted)))

    async def link(self, origin: Origin) -> Link | None:
        """The link of the installation a request came through, active or revoked."""
        return await self.runtime.db.run(resolve, origin.enterprise_id,
                                         origin.team_id or origin.user_team,
                                         origin.is_enterprise_install)

    async def _link(self, client: AsyncWebClient, request: Request) -> Link | None:
        """The active link serving the request, or ``None`` after telling the person why."""
        origin = request.origin
        link = await self.link(origin)
        if link is not None and link.active:
            return link
        reason = "not_linked" if link is None else "link_revoked"
        if link is not None:
            await self.runtime.audit.record(link.tenant_id, events.RUN_REFUSED, {
                "principal": origin.principal, "reason": reason,
                "correlation_id": request.event_id,
            })
        log.info("request from an unlinked workspace refused", team_id=origin.team_id,
                 enterprise_id=origin.enterprise_id, reason=reason)
        if not request.told:
            await self._reply(client, request, render.refusal(reason))
        return None

    def submit(self, request: Request) -> None:
        """Hand an acknowledged request to the executor: accept it, then run it.

        The run goes to the runtime's runner (``bots.runner``): executed in this
        process, or queued for the workers, which finish the answer message.
        If shutdown comes before the run has its slot, the request is parked instead:
        recorded as a ``queued`` run with its answer message open (accepted now if the
        job had not got that far), which the next start resumes into that message
        (``bots.web.resume_unfinished``), so an acknowledged request is never lost.
        """
        accepted: Accepted | None = None

        async def job() -> None:
            nonlocal accepted
            accepted = await self._accept(request)
            if accepted is None:
                return
            ready = accepted

            async def execute() -> None:
                await self._run(ready.answer, ready.grant, request.prompt, ready.conversation)

            await self.runtime.runner.run(ready.grant, request.prompt,
                                          conversation_id=ready.conversation, execute=execute)
            await self.home(request.origin)

        async def park() -> None:
            ready = accepted or await self._accept(request)
            if ready is not None:
                await self.runtime.runner.queue(ready.grant, request.prompt,
                                                conversation_id=ready.conversation)

        # Event ids are an installation's own: the key holds both, as the claim does.
        self.executor.submit(f"slack:{request.origin.key}:{request.event_id}", job, park=park)

    async def _accept(self, request: Request) -> Accepted | None:
        """Everything before the run: claim, link, roles, context, the answer message.

        ``None`` when the request ends here (a duplicate, no installation, no link, a
        refusal or an empty prompt), after telling the person why where there is one.
        """
        db = self.runtime.db
        origin = request.origin
        if not await db.run(first_delivery, request.event_id, origin.key):
            log.info("duplicate Slack delivery dropped", event_id=request.event_id)
            return None
        self._claims += 1
        if self._claims % PRUNE_EVERY == 0:
            await db.run(forget_events_before, EVENTS_KEPT)
        client = await self._client(origin)
        if client is None:
            return None
        link = await self._link(client, request)
        if link is None:
            return None
        if not request.prompt:
            await self._reply(client, request, render.ask_hint(self.command))
            return None
        roles = await self._roles(client, origin.user_id)
        try:
            grant = await self.runtime.agent.open(
                tenant_id=link.tenant_id, principal_id=origin.principal,
                extra_roles=roles, correlation_id=request.event_id, initiator="user",
            )
        except RunRefused as refused:
            await self._reply(client, request, render.refusal(refused.reason))
            return None
        except NotFound:
            await self._reply(client, request, render.refusal("not_linked"))
            return None
        thread_ts = request.thread_ts
        if request.surface == "command":
            try:
                asked = await client.chat_postMessage(
                    channel=request.channel, text=render.asked(origin.user_id, request.prompt))
            except SlackApiError as exc:
                log.info("slash command channel not writable", error=str(exc.response.get("error")))
                await self._reply(client, request, render.cannot_post())
                return None
            thread_ts = str(asked["ts"])
        answer = await AnswerMessage.open(client, request.channel, thread_ts,
                                          origin.user_team, origin.user_id)
        await db.run(remember_run, RunMessage(
            run_id=grant.ctx.run_id, tenant_id=link.tenant_id,
            enterprise_id=origin.enterprise_id or "", team_id=origin.user_team,
            user_id=origin.user_id, channel=request.channel, thread_ts=thread_ts,
            answer_ts=answer.ts,
        ))
        return Accepted(grant=grant, answer=answer,
                        conversation=request.conversation_id(thread_ts))

    async def _run(self, answer: AnswerMessage, grant: RunGrant, prompt: str,
                   conversation: str) -> None:
        """Start the run in its conversation; the answer message always ends.

        The agent service shows the model the principal's earlier turns of
        ``conversation`` and keeps this exchange when the run completes.
        """
        try:
            outcome = await self.runtime.agent.start(grant, prompt, conversation_id=conversation,
                                                     on_tool=answer.progress,
                                                     on_text=answer.text)
        except RunRefused as refused:
            await answer.finish(render.Rendered(render.refusal(refused.reason),
                                                status="complete",
                                                title=render.STATUS_DONE["failed"]))
            return
        except Exception:
            await answer.finish(render.Rendered(render.failure(None), status="error",
                                                title=render.STATUS_DONE["failed"]))
            raise
        await answer.finish(render.outcome(outcome))

    async def _reply(self, client: AsyncWebClient, request: Request, text: str) -> None:
        """A refusal where the person will see it: ephemeral for commands, else in thread.

        A reply that cannot be delivered (the app was removed from the channel) is
        logged, not raised: there is nobody left to tell.
        """
        try:
            if request.surface == "command":
                await client.chat_postEphemeral(channel=request.channel,
                                                user=request.origin.user_id, text=text)
            else:
                await client.chat_postMessage(channel=request.channel,
                                              thread_ts=request.thread_ts, text=text)
        except SlackApiError as exc:
            log.info("slack reply not delivered", error=str(exc.response.get("error")))

    async def resume(self, origin: Origin, run_id: str, channel: str) -> None:
        """The Resume button: only the run's principal or a tenant admin may press it.

        Where the deployment has workers, the halted run is queued again (once, however
        many presses) and a worker finishes its answer message; otherwise it resumes here.
        """
        served = await self._served(origin)
        if served is None:
            return
        client, link = served.client, served.link
        message = await self.runtime.db.run(run_message, link.tenant_id, run_id)
        if message is None or message.answer_ts is None:
            log.warning("resume pressed for an unknown run", run_id=run_id)
            return
        record = await self.runtime.db.run(get_run, link.tenant_id, run_id)
        own = origin.principal == record.principal_id
        if not (own or served.is_admin):
            await client.chat_postEphemeral(channel=channel, user=origin.user_id,
                                            text=render.resume_denied())
            return
        # The resumed run acts as it was asked: its own principal, with the roles Slack
        # vouched for then, never the presser's.
        jobs = self.runtime.jobs
        try:
            grant = await self.runtime.agent.reopen(link.tenant_id, run_id)
            if jobs is not None:
                await self.runtime.agent.request_resume(link.tenant_id, run_id,
                                                        by=origin.principal)
            elif not await self.runtime.agent.claim(grant):
                raise Conflict("already resumed")
        except (RunRefused, Conflict, NotFound) as exc:
            log.info("resume not started", run_id=run_id, reason=str(exc))
            return
        answer = AnswerMessage(client, message.channel, message.answer_ts)
        await client.chat_update(channel=message.channel, ts=message.answer_ts,
                                 text=render.resume_started(), blocks=[])
        if jobs is not None:
            # A worker resumes it and finishes this message (``SlackDelivery.deliver``).
            await jobs.enqueue(RUN_JOB, link.tenant_id, run_id=run_id)
            return
        try:
            async with self.executor.slot(grant.ctx.tenant_id):
                outcome = await self.runtime.agent.resume(grant)
        except Exception:
            await answer.finish(render.Rendered(render.failure(None), status="error"))
            raise
        await answer.finish(render.outcome(outcome))

    async def home(self, origin: Origin, *, verify: bool = False) -> None:
        """Publish the person's App Home; with ``verify``, an admin's audit check too."""
        served = await self._served(origin)
        if served is None:
            return
        tenant_id, is_admin = served.link.tenant_id, served.is_admin
        extra = await verify_view_section(self.runtime, tenant_id) if verify and is_admin else None
        try:
            await publish_home(served.client, self.runtime, user_id=origin.user_id,
                               tenant_id=tenant_id, principal_id=origin.principal,
                               is_admin=is_admin, extra=extra)
        except SlackApiError as exc:
            log.warning("app home not published", error=str(exc.response.get("error")))

    async def toggle_digest(self, origin: Origin, digest_id: str) -> None:
        """An App Home Pause or Resume: only a tenant admin, for the tenant of the
        installation the press came through; the change is audited as theirs."""
        served = await self._served(origin)
        if served is None:
            return
        tenant_id = served.link.tenant_id
        if served.is_admin:
            admin = Admin(self.runtime.db, self.runtime.audit, self.runtime.keyring,
                          by=origin.principal)
            try:
                digest = await self.runtime.db.run(get_digest, tenant_id, digest_id)
                if digest.active:
                    await admin.pause_digest(tenant_id, digest_id, reason="admin")
                else:
                    await admin.resume_digest(tenant_id, digest_id)
            except NotFound:
                log.info("digest button for an unknown digest", digest_id=digest_id)
        else:
            log.warning("digest button pressed by a non-admin refused", tenant_id=tenant_id)
        await self.home(origin)
