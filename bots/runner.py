"""Where an accepted request's run executes: here, or on the workers.

A transport accepts a request in the web process (claim, link, principal, roles, the
context, the answer message), then hands the run to the runtime's ``Runner``:

- ``Direct`` executes it at once (commands, tests of a transport on its own);
- ``InProcess`` executes it in the executor, within its tenant's and the process's
  slots (``tenantry serve`` on SQLite, the embedded default);
- ``Queued`` records it as a ``queued`` run and puts a ``run`` job on the queue for a
  worker (``tenantry serve`` on PostgreSQL): the worker resumes it, and the runtime's
  deliverers there render its outcome where it was asked.

Transports never ask which: they pass what executing here would be (``execute``), and
what to record if it must wait (``queue``), the same call either way. A Resume pressed
on a halted run goes the same way where the deployment has workers
(``queue_resume``): the web process only puts the run back on the queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from core.agent import AgentService
from core.builder import RunGrant
from core.logs import log

if TYPE_CHECKING:
    from bots.executor import Executor
    from bots.jobs.queue import JobQueue

Execute = Callable[[], Awaitable[None]]

RUN_JOB = "run"
"""The job kind of a run on the queue: its claim's one id is ``run_id``."""


class Runner(Protocol):
    """Executes, or queues, the run of an accepted request."""

    async def run(self, grant: RunGrant, prompt: str, *, conversation_id: str | None,
                  execute: Execute) -> None:
        """Execute the run (``execute``) here, or queue it for a worker."""

    async def queue(self, grant: RunGrant, prompt: str, *, conversation_id: str | None) -> None:
        """Record the run as ``queued`` for later: a shutdown came before it started."""


class Direct:
    """Executes at once, in the caller's task."""

    def __init__(self, agent: AgentService) -> None:
        self.agent = agent

    async def run(self, grant: RunGrant, prompt: str, *, conversation_id: str | None,
                  execute: Execute) -> None:
        await execute()

    async def queue(self, grant: RunGrant, prompt: str, *, conversation_id: str | None) -> None:
        await self.agent.queue(grant, prompt, conversation_id=conversation_id)


class InProcess(Direct):
    """Executes in the executor's slots; a queued run waits for this process's next start."""

    def __init__(self, agent: AgentService, executor: Executor) -> None:
        super().__init__(agent)
        self.executor = executor

    async def run(self, grant: RunGrant, prompt: str, *, conversation_id: str | None,
                  execute: Execute) -> None:
        async with self.executor.slot(grant.ctx.tenant_id):
            await execute()


class Queued:
    """Records the run as ``queued`` and puts its job on the queue, for the workers.

    Between the two writes a process can die: the run is then ``queued`` without a job,
    and the web processes' upkeep queues a job for it (``bots.web.resume_unfinished``).
    """

    def __init__(self, agent: AgentService, jobs: JobQueue) -> None:
        self.agent = agent
        self.jobs = jobs

    async def run(self, grant: RunGrant, prompt: str, *, conversation_id: str | None,
                  execute: Execute) -> None:
        await self.queue(grant, prompt, conversation_id=conversation_id)

    async def queue(self, grant: RunGrant, prompt: str, *, conversation_id: str | None) -> None:
        await self.agent.queue(grant, prompt, conversation_id=conversation_id)
        await self.jobs.enqueue(RUN_JOB, grant.ctx.tenant_id, run_id=grant.ctx.run_id)
        log.debug("run queued for the workers", run_id=grant.ctx.run_id)


async def queue_resume(agent: AgentService, jobs: JobQueue, tenant_id: str, run_id: str, *,
                       by: str) -> None:
    """Put a halted run back on the queue for the workers, as asked for by ``by`` (a
    Resume pressed in a web process): a worker resumes it and its deliverers render the
    outcome where the run was asked, as for a new run.

    Between the two writes a process can die: the run is then ``queued`` without a job,
    and the web processes' upkeep queues a job for it, as for a new run.

    Raises:
        NotFound: the run does not exist in this tenant.
        Conflict: it is not halted any more (another press came first), or is a halted
            direct call.
    """
    await agent.request_resume(tenant_id, run_id, by=by)
    await jobs.enqueue(RUN_JOB, tenant_id, run_id=run_id)
