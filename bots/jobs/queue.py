"""The deployment's job queue: procrastinate on the app's PostgreSQL database.

Any process may ``enqueue`` a job of a registered kind; ``tenantry worker`` executes
them. Each kind's handler is registered once with ``register_job`` (a module under
``bots.jobs`` that the worker imports), and receives the job's verified claim::

    register_job("digest", fire_digest)           # async (runtime, job) -> None
    await queue.enqueue("digest", tenant_id, digest_id=d, fire_time=t)

Before a handler sees a job, the worker checks it: its HMAC (``bots.jobs.claims``), a
handler for its kind, and its tenant, which must exist and be active. A job that fails
a check, or that its handler refuses (``ClaimRefused``: a run that is not the
tenant's), is not executed: it is recorded as ``job.refused`` in the tenant's audit log,
or only logged if no such tenant exists, and it ends there.

Fairness: every job of a tenant takes one of the tenant's ``runs_per_tenant`` places
across the whole deployment. A place is a procrastinate ``lock``
(``tenant:<tenant_id>:<n>``): of the jobs sharing a lock, one executes at a time, so a
tenant never has more than ``runs_per_tenant`` jobs executing, however many workers
there are, and a burst of one tenant leaves the other workers to other tenants. A new
job takes the tenant's place with the fewest jobs waiting or executing.

A job's ``queueing_lock`` is its claim: the same claim is never waiting twice (a
double enqueue, or a clock firing twice, queues one job).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued, JobAborted
from procrastinate.job_context import JobContext
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bots.jobs.claims import Claim, ClaimRefused, ClaimSigner
from core.audit import events
from core.errors import NotFound
from core.logs import log
from core.tenants import get_tenant

if TYPE_CHECKING:
    from bots.runtime import Runtime

TASK = "tenantry.job"
"""The one procrastinate task: it dispatches on the claim's kind."""
QUEUE = "tenantry"
LEASE_PREFIX = "queue-worker:"
"""How a worker names itself on the runs it leases: its procrastinate worker id follows."""
MAX_RETRIES = 5
"""Attempts of a job that failed (not a refusal, not a run that failed: the machinery)."""


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A verified job, as its handler receives it.

    Attributes:
        attempts: How many times it was tried before (0 the first time; a job retried
            after its worker died or stopped has more).
    """

    claim: Claim
    job_id: int
    attempts: int

    @property
    def tenant_id(self) -> str:
        """The tenant the job acts for (its active status checked)."""
        return self.claim.tenant_id


Handler = Callable[["Runtime", QueuedJob], Awaitable[None]]

_HANDLERS: dict[str, Handler] = {}


def register_job(kind: str, handler: Handler) -> None:
    """Let workers execute jobs of ``kind`` with ``handler``.

    Raises:
        ValueError: another handler already has that kind.
    """
    if _HANDLERS.get(kind, handler) is not handler:
        raise ValueError(f"job kind {kind!r} already has a handler")
    _HANDLERS[kind] = handler


def lease_owner(worker_id: int | None) -> str:
    """The name a worker leases runs under: its procrastinate id, so its heartbeat tells
    whether it still lives."""
    return f"{LEASE_PREFIX}{worker_id}"


def libpq_url(database_url: str) -> str:
    """The app's SQLAlchemy URL as psycopg's own connection string."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


class Retries(BaseRetryStrategy):
    """When procrastinate tries a job again.

    A job stopped by its worker's shutdown goes back to the queue at once, for another
    worker (its run resumes from its checkpoint); one that failed is tried again after
    2, 4, 8... seconds, ``MAX_RETRIES`` times. A run that fails is not a failed job:
    its handler records the outcome and returns.
    """

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError):
            return RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, JobAborted) or job.attempts >= MAX_RETRIES:
            return None
        return RetryDecision(retry_in={"seconds": 2 ** (job.attempts + 1)})


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """The queue at one moment: jobs waiting, executing, and the oldest wait (seconds)."""

    waiting: int
    executing: int
    oldest_wait_s: float


class JobQueue:
    """procrastinate on the app database: ``enqueue`` anywhere, ``serve`` in a worker.

    Use it as ``async with JobQueue(...) as queue``.

    Args:
        database_url: The app database (PostgreSQL).
        key: ``TENANTRY_JOB_KEY``.
        runs_per_tenant: A tenant's places across the deployment (see the module doc).
        pool_size: Connections this process keeps to the queue.
    """

    def __init__(self, database_url: str, key: SecretStr | None, *, runs_per_tenant: int,
                 pool_size: int = 4) -> None:
        self.signer = ClaimSigner(key)
        self.runs_per_tenant = runs_per_tenant
        self.app = App(connector=PsycopgConnector(
            conninfo=libpq_url(database_url), min_size=1, max_size=pool_size))
        self.app.task(name=TASK, queue=QUEUE, pass_context=True,
                      retry=Retries())(self._dispatch)
        self._runtime: Runtime | None = None

    async def __aenter__(self) -> Self:
        await self.app.open_async()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.app.close_async()

    def serve(self, runtime: Runtime) -> None:
        """Execute this process's jobs with ``runtime`` (a worker's)."""
        self._runtime = runtime

    async def enqueue(self, kind: str, tenant_id: str, **ids: str) -> int | None:
        """Queue a job of ``kind`` for ``tenant_id`` acting on ``ids``; its id, or
        ``None`` if the same claim is already waiting."""
        claim = Claim.of(kind, tenant_id, ids)
        lock = await self._place(claim)
        try:
            return await self.app.configure_task(
                TASK, lock=lock, queueing_lock=claim.digest(), queue=QUEUE,
            ).defer_async(**self.signer.payload(claim))
        except AlreadyEnqueued:
            return None

    async def _place(self, claim: Claim) -> str:
        """The tenant's place with the fewest jobs waiting or executing."""
        prefix = f"tenant:{claim.tenant_id}:"
        rows = await self.app.connector.execute_query_all_async(
            "SELECT lock, count(*) AS jobs FROM procrastinate_jobs "
            "WHERE status IN ('todo', 'doing') AND starts_with(lock, %(prefix)s) "
            "GROUP BY lock", prefix=prefix)
        taken = {str(row["lock"]): int(row["jobs"]) for row in rows}
        start = int(claim.digest()[:8], 16)
        places = [f"{prefix}{(start + n) % self.runs_per_tenant}"
                  for n in range(self.runs_per_tenant)]
        return min(places, key=lambda place: taken.get(place, 0))

    async def depth(self) -> QueueDepth:
        """How many jobs wait and execute, and how long the oldest waiting has waited."""
        row = await self.app.connector.execute_query_one_async(
            "SELECT count(*) FILTER (WHERE j.status = 'todo') AS waiting, "
            "count(*) FILTER (WHERE j.status = 'doing') AS executing, "
            "COALESCE(EXTRACT(EPOCH FROM now() - min(e.at) FILTER "
            "(WHERE j.status = 'todo')), 0) AS oldest "
            "FROM procrastinate_jobs j LEFT JOIN procrastinate_events e "
            "ON e.job_id = j.id AND e.type = 'deferred' "
            "WHERE j.status IN ('todo', 'doing') AND j.queue_name = %(queue)s", queue=QUEUE)
        return QueueDepth(int(row["waiting"]), int(row["executing"]), float(row["oldest"]))

    async def live_workers(self, stalled_after_s: float) -> set[int]:
        """Workers whose heartbeat is younger than ``stalled_after_s``."""
        rows = await self.app.connector.execute_query_all_async(
            "SELECT id FROM procrastinate_workers "
            "WHERE last_heartbeat >= now() - make_interval(secs => %(seconds)s)",
            seconds=stalled_after_s)
        return {int(row["id"]) for row in rows}

    async def _dispatch(self, context: JobContext, /, **payload: Any) -> None:
        """procrastinate's task: check the job, then hand it to its kind's handler."""
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError("this process does not execute jobs (JobQueue.serve)")
        job = context.job
        # One procrastinate worker per process: its runs are leased in its name.
        runtime.agent.worker = lease_owner(job.worker_id)
        assert job.id is not None
        try:
            claim = self.signer.verify(payload)
            handler = _HANDLERS.get(claim.kind)
            if handler is None:
                raise ClaimRefused("unknown_kind", claim.kind)
            try:
                tenant = await runtime.db.run(get_tenant, claim.tenant_id)
            except NotFound:
                raise ClaimRefused("unknown_tenant") from None
            if tenant.status != "active":
                raise ClaimRefused("tenant_suspended")
            await handler(runtime, QueuedJob(claim, job.id, job.attempts))
        except ClaimRefused as refused:
            await refuse(runtime, payload, job.id, refused)


async def refuse(runtime: Runtime, payload: dict[str, Any], job_id: int,
                 refused: ClaimRefused) -> None:
    """Record a refused job in the audit log of the tenant it names, if there is one.

    The payload is not trusted: only its kind and a digest of it are recorded, and only
    in the log of a tenant that exists.
    """
    tenant_id, kind = payload.get("tenant_id"), payload.get("kind")
    seen = hashlib.sha256(repr(sorted(payload.items())).encode()).hexdigest()[:32]
    fields = {"reason": refused.reason, "job_id": job_id,
              "kind": kind if isinstance(kind, str) and len(kind) <= 64 else None,
              "payload_digest": seen}
    log.warning("job refused", job_id=job_id, reason=refused.reason, error=str(refused))
    if not isinstance(tenant_id, str):
        return
    try:
        await runtime.db.run(get_tenant, tenant_id)
    except NotFound:
        return
    await runtime.audit.record(tenant_id, events.JOB_REFUSED, fields)
