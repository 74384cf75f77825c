"""The ``run`` job: a worker executes a run a web process accepted and queued.

The run was recorded ``queued`` with everything it was asked with (principal, vouched
roles, conversation, correlation id); the job carries only its id. The worker reopens
it (the tenant's plan and policy of now), leases it, resumes it (a ``queued`` run
starts, or goes on after its halt if a Resume queued it again; a ``running`` one,
whose worker died or stopped, continues from its checkpoint with its settled calls
and tool effects replayed, never repeated), and hands the outcome to the runtime's
deliverers once.

Delivery is recorded on the run (``core.runs.mark_delivered``) after the deliverers
return. A worker killed between the two makes the retried job deliver again: Slack's
delivery edits the one answer message, so that is no second post; a Teams reply
could be posted twice in that window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bots.jobs.claims import ClaimRefused
from bots.jobs.queue import QueuedJob, register_job
from bots.runner import RUN_JOB
from core.agent import RunOutcome
from core.errors import Conflict, NotFound, RunRefused
from core.logs import log
from core.runs import (
    FINAL_STATUSES,
    RESUME_REQUESTED,
    get_run,
    mark_delivered,
    refuse_queued,
)

if TYPE_CHECKING:
    from bots.runtime import Runtime


async def run_job(runtime: Runtime, job: QueuedJob) -> None:
    """Execute (or finish delivering) the run the job names.

    Raises:
        ClaimRefused: ``unknown_run``: no such run in the job's tenant.
    """
    if not await finish_run(runtime, job.tenant_id, job.claim.id("run_id"),
                            first_attempt=not job.attempts):
        raise ClaimRefused("unknown_run")


async def finish_run(runtime: Runtime, tenant_id: str, run_id: str, *,
                     first_attempt: bool = False) -> bool:
    """Execute a recorded run to its end and deliver it once; ``False`` if there is no such
    run in the tenant. A run that ended but was not delivered is only delivered."""
    try:
        record = await runtime.db.run(get_run, tenant_id, run_id)
    except NotFound:
        return False
    if record.status in FINAL_STATUSES or record.status == "halted":
        # Executed already (an earlier attempt died before delivering).
        if not record.detail.get("delivered"):
            await deliver(runtime, await runtime.agent.outcome(tenant_id, run_id))
        return True
    if record.status == "queued" and first_attempt:
        asked = record.detail.get(RESUME_REQUESTED)  # a halted run queued again: since then
        waited = datetime.now(UTC) - (record.created_at if asked is None
                                      else datetime.fromisoformat(str(asked)))
        runtime.metrics.queue_wait.observe(max(0.0, waited.total_seconds()))
    try:
        grant = await runtime.agent.reopen(tenant_id, run_id)
        outcome = await runtime.agent.resume(grant)
    except RunRefused as refused:  # audited by the agent service
        log.info("queued run refused", run_id=run_id, reason=refused.reason)
        if await runtime.db.run(refuse_queued, tenant_id, run_id, refused.reason):
            await deliver(runtime, await runtime.agent.outcome(tenant_id, run_id))
        return True
    except Conflict as exc:  # another process holds it, or it ended meanwhile
        log.info("queued run not resumed", run_id=run_id, reason=str(exc))
        return True
    await deliver(runtime, outcome)
    return True


async def deliver(runtime: Runtime, outcome: RunOutcome) -> None:
    """Hand the outcome to every transport, then note it delivered."""
    for deliverer in runtime.deliverers:
        await deliverer(outcome)
    await runtime.db.run(mark_delivered, outcome.tenant_id, outcome.run_id)


register_job(RUN_JOB, run_job)
