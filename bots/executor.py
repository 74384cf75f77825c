"""The in-process run executor: every background run has an owner.

Transports acknowledge at once and hand the run to the executor. It bounds how many
runs each tenant may have in flight (one noisy tenant cannot starve the others),
logs failures instead of losing them, and drains on shutdown: in-flight runs get a
grace period to finish; those still running are cancelled, which leaves them at their
last checkpoint with status ``running``, and the next start resumes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from core.logs import log

Job = Callable[[], Awaitable[object]]


@dataclass
class ExecutorStats:
    """Counters for health checks and tests."""

    submitted: int = 0
    finished: int = 0
    failed: int = 0
    duplicates: int = 0
    cancelled: int = 0


@dataclass
class Executor:
    """Runs jobs in tracked tasks with a per-tenant concurrency bound.

    Attributes:
        per_tenant: How many runs of one tenant may execute at once; further runs of
            that tenant wait without holding a slot of any other tenant.
        grace_s: How long shutdown waits for in-flight runs before cancelling them.
    """

    per_tenant: int = 4
    grace_s: float = 10.0
    stats: ExecutorStats = field(default_factory=ExecutorStats)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _limits: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _tenant_slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _closing: bool = False

    def submit(self, tenant_id: str, key: str, job: Job) -> bool:
        """Start ``job`` unless a job with the same key is in flight; ``False`` if refused.

        The key is the run id, so the same run is never executed twice at once in this
        process (a double-clicked Resume, a retried event).
        """
        if self._closing:
            raise RuntimeError("executor is shutting down")
        if key in self._tasks:
            self.stats.duplicates += 1
            return False
        limit = self._limits.setdefault(tenant_id, asyncio.Semaphore(self.per_tenant))
        self.stats.submitted += 1
        task = asyncio.create_task(self._run(limit, tenant_id, key, job), name=f"run:{key}")
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None))
        return True

    async def _run(self, limit: asyncio.Semaphore, tenant_id: str, key: str, job: Job) -> None:
        async with limit:
            try:
                await job()
            except asyncio.CancelledError:
                self.stats.cancelled += 1
                raise
            except Exception:
                self.stats.failed += 1
                log.exception("background run failed", tenant_id=tenant_id, run_id=key)
                return
            self.stats.finished += 1

    @asynccontextmanager
    async def slot(self, tenant_id: str) -> AsyncIterator[None]:
        """Hold one of the tenant's ``per_tenant`` run slots.

        A transport only learns the tenant after the acknowledgement, inside the job
        (a Slack request names its workspace, and several workspaces can share a
        tenant); the run itself then waits here, so the bound is per tenant.
        """
        limit = self._tenant_slots.setdefault(tenant_id, asyncio.Semaphore(self.per_tenant))
        async with limit:
            yield

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished."""
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Wait until every submitted job has finished (tests and the demo use this)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop taking jobs, let in-flight ones finish within the grace period, cancel the rest."""
        self._closing = True
        pending = list(self._tasks.values())
        if not pending:
            return
        _done, still = await asyncio.wait(pending, timeout=self.grace_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
            log.warning("runs cancelled at shutdown; they resume on the next start",
                        count=len(still))
