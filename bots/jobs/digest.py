"""The ``digest`` job: a worker fires a digest the clock queued (PostgreSQL deployments).

``tenantry clock`` only decides *when*: each firing becomes a job naming the digest,
its scheduled time and the time the clock saw it due (``enqueue_firings``). The
worker fires it with ``fire_digest``, judging lateness by when the clock saw it, not
by how long the job waited: a busy queue delays a digest, it does not skip it.

Three clocks started by mistake queue up to three jobs for one firing; the first to
claim it (``core.digests.records.claim_firing``) runs and posts, the others find it
``already_fired``. A worker killed mid-firing leaves the firing claimed: its retried
job finishes the firing's run from its checkpoint (or opens it, if the worker died
before it had) and posts it once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bots.clock import Fire
from bots.digests import fire_digest, run_claimed
from bots.jobs.claims import ClaimRefused
from bots.jobs.queue import JobQueue, QueuedJob, register_job
from bots.jobs.runs import finish_run
from core.digests.schedule import iso
from core.logs import log

if TYPE_CHECKING:
    from bots.runtime import Runtime

DIGEST_JOB = "digest"
"""Its claim's ids: ``digest_id``, ``fire_time`` and ``seen_at`` (ISO 8601, UTC)."""


def enqueue_firings(queue: JobQueue) -> Fire:
    """The clock's callback on PostgreSQL: each firing becomes a ``digest`` job."""
    async def fire(tenant_id: str, digest_id: str, fire_time: datetime) -> None:
        await queue.enqueue(DIGEST_JOB, tenant_id, digest_id=digest_id,
                            fire_time=iso(fire_time), seen_at=iso(datetime.now(UTC)))
        log.info("digest firing queued", tenant_id=tenant_id, digest_id=digest_id,
                 fire_time=iso(fire_time))

    return fire


def _moment(job: QueuedJob, name: str) -> datetime:
    try:
        return datetime.fromisoformat(job.claim.id(name)).astimezone(UTC)
    except ValueError:
        raise ClaimRefused("bad_claim", name) from None


async def digest_job(runtime: Runtime, job: QueuedJob) -> None:
    """Fire the digest at the job's time; after a crash, finish the firing's run."""
    digest_id = job.claim.id("digest_id")
    fire_time, seen_at = _moment(job, "fire_time"), _moment(job, "seen_at")
    fired = await fire_digest(runtime, job.tenant_id, digest_id, fire_time, now=seen_at)
    log.info("digest job done", tenant_id=job.tenant_id, digest_id=digest_id,
             status=fired.status, run_id=fired.run_id)
    if fired.status != "already_fired" or not job.attempts:
        return
    # An earlier attempt of this job claimed the firing, then its worker died.
    if not await finish_run(runtime, job.tenant_id, fired.run_id):
        await run_claimed(runtime, job.tenant_id, digest_id, fire_time)


register_job(DIGEST_JOB, digest_job)
