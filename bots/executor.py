"""The in-process run executor: every background run has an owner and waits its turn.

Transports acknowledge at once and hand the work to the executor as a *job*. A job is
*queued* until it is admitted, then *running* until it ends. It is admitted when all
three hold:

- the web process has served no request for ``quiet_s`` (the web app marks each
  one with ``serving``): runs share the event loop with the acknowledgements, so a
  burst of requests is acknowledged first and the runs it started begin after it.
  The requests of one burst arrive a little apart (a fraction of a millisecond to a
  few milliseconds on loopback), and the quiet period keeps those gaps from letting
  runs in. A job queued for ``max_delay_s`` is admitted even while requests keep
  coming, so a steady stream of requests delays runs by at most that much and never
  starves them;
- fewer than ``max_running`` jobs run in the process, all tenants together;
- fewer than ``per_tenant`` jobs of its tenant run. The next job comes from the
  tenant with the fewest running, so one noisy tenant cannot take the process, and a
  tenant's jobs start in the order they were submitted.

Inside a job, ``slot`` bounds the tenant's runs once more when the transport learns
the tenant only there (a Slack request names its workspace, and several workspaces
can share a tenant). A job waiting there gives its place in ``max_running`` back
until it has the slot, so the workspaces of one busy tenant cannot fill the process
with jobs that only wait.

Shutdown stops admitting. A job that never started is handed to its ``park``: the
Slack transport records the request as a ``queued`` run, which the next start resumes.
A job without one is dropped, which must be safe for it (its work is recorded already,
or the person can simply ask again). Running jobs, parks included, get a grace period;
those still running are cancelled, which leaves their runs at the last checkpoint with
status ``running``, and the next start resumes them.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from core.logs import log

Job = Callable[[], Awaitable[object]]


@dataclass
class ExecutorStats:
    """Counters for health checks and tests.

    Attributes:
        submitted: Jobs accepted by ``submit``; ``duplicates`` counts those refused.
        started: Jobs admitted and started.
        finished, failed, cancelled: How the executor's tasks ended (parks included).
        parked: Jobs that had not started at shutdown and were handed to their park.
        dropped: Jobs that had not started at shutdown and had no park.
    """

    submitted: int = 0
    started: int = 0
    finished: int = 0
    failed: int = 0
    duplicates: int = 0
    cancelled: int = 0
    parked: int = 0
    dropped: int = 0


@dataclass(slots=True)
class _Queued:
    """A submitted job waiting for admission."""

    tenant_id: str
    key: str
    job: Job
    park: Job | None
    due: float
    """Loop time from which it is admitted even while requests are in flight."""


@dataclass
class Executor:
    """Runs jobs in tracked tasks, admitted between requests and within two bounds.

    Attributes:
        per_tenant: How many jobs of one tenant may run at once; further jobs of that
            tenant wait without holding a place of any other tenant.
        max_running: How many jobs may run at once in this process, all tenants together.
        max_delay_s: The longest a job waits for the web process to be quiet; after
            that it is admitted as soon as the two bounds allow. A quarter of a second
            outlasts the acknowledgement of a burst of 200 requests on two cores (about
            50-100 ms) and is nothing beside Slack's 3 s or a model's first token.
        quiet_s: How long the web process must have had no request in flight for
            the requests to count as over.
        grace_s: How long shutdown waits for running jobs before cancelling them.
    """

    per_tenant: int = 4
    max_running: int = 16
    max_delay_s: float = 0.25
    quiet_s: float = 0.02
    grace_s: float = 10.0
    stats: ExecutorStats = field(default_factory=ExecutorStats)
    _queued: dict[str, _Queued] = field(default_factory=dict)
    _queues: dict[str, deque[_Queued]] = field(default_factory=dict)
    _turns: deque[str] = field(default_factory=deque)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _running: Counter[str] = field(default_factory=Counter)
    _tenant_slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _aside: int = 0
    """Running jobs waiting in ``slot``: they hold no place in ``max_running``."""
    _returning: int = 0
    """Jobs of ``_aside`` that have their tenant's slot: the next free places are theirs."""
    _requests: int = 0
    _quiet_from: float = float("-inf")
    _timer: asyncio.TimerHandle | None = None
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _closing: bool = False

    def submit(self, tenant_id: str, key: str, job: Job, *, park: Job | None = None) -> bool:
        """Queue ``job`` unless a job with the same key is queued or running.

        The key is the run id, so the same run is never executed twice at once in this
        process (a double-clicked Resume, a retried event).

        Args:
            tenant_id: Whose turn the job takes: the tenant, or what the transport knows
                of it before the job runs (a Slack workspace).
            park: What to do instead if the job has not started by shutdown; without
                it, the job is dropped then.

        Returns:
            ``False`` if refused as a duplicate.

        Raises:
            RuntimeError: the executor is shutting down.
        """
        if self._closing:
            raise RuntimeError("executor is shutting down")
        if key in self._tasks or key in self._queued:
            self.stats.duplicates += 1
            return False
        due = asyncio.get_running_loop().time() + self.max_delay_s
        entry = _Queued(tenant_id, key, job, park, due)
        self._queued[key] = entry
        if tenant_id not in self._queues:
            self._queues[tenant_id] = deque()
            self._turns.append(tenant_id)
        self._queues[tenant_id].append(entry)
        self.stats.submitted += 1
        self._admit()
        return True

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Mark one web request in flight: no job is admitted until it and its burst end.

        A job that is due is admitted all the same.
        """
        self._requests += 1
        try:
            yield
        finally:
            self._requests -= 1
            if not self._requests:
                self._quiet_from = asyncio.get_running_loop().time() + self.quiet_s
                self._admit()

    def _admit(self) -> None:
        """Start every queued job that may start now, fairly between tenants.

        The next job comes from the tenant with the fewest running jobs (the one that
        waited longest among equals), so a tenant with many queued jobs gets no larger
        share of the process than one with a single job. If jobs wait only for the web
        process to be quiet, a timer admits them when it is, or when they are due.
        """
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        quiet = not self._requests and now >= self._quiet_from
        while self._active + self._returning < self.max_running:
            ready = [tenant_id for tenant_id in self._turns
                     if self._running[tenant_id] < self.per_tenant
                     and (quiet or self._queues[tenant_id][0].due <= now)]
            if not ready:
                break
            tenant_id = min(ready, key=self._running.__getitem__)
            queue = self._queues[tenant_id]
            entry = queue.popleft()
            self._turns.remove(tenant_id)
            if queue:
                self._turns.append(tenant_id)
            else:
                del self._queues[tenant_id]
            self._start(entry, entry.job)
            self.stats.started += 1
        wake = None
        if not quiet and self._active + self._returning < self.max_running:  # else an end admits
            due = [queue[0].due for tenant_id, queue in self._queues.items()
                   if queue[0].due > now and self._running[tenant_id] < self.per_tenant]
            if due:
                wake = min(due) if self._requests else min(*due, self._quiet_from)
        if self._timer is not None and self._timer.when() != wake:
            self._timer.cancel()
            self._timer = None
        if wake is not None and self._timer is None:
            self._timer = loop.call_at(wake, self._wakeup)

    def _wakeup(self) -> None:
        self._timer = None
        self._admit()

    def _start(self, entry: _Queued, job: Job) -> None:
        del self._queued[entry.key]
        self._running[entry.tenant_id] += 1
        task = asyncio.create_task(self._run(entry.tenant_id, entry.key, job),
                                   name=f"run:{entry.key}")
        self._tasks[entry.key] = task
        task.add_done_callback(lambda _task: self._ended(entry))
        self._wake()

    def _ended(self, entry: _Queued) -> None:
        self._tasks.pop(entry.key, None)
        self._running[entry.tenant_id] -= 1
        if not self._running[entry.tenant_id]:
            del self._running[entry.tenant_id]
        self._admit()
        self._wake()

    def _wake(self) -> None:
        """Tell ``wait_idle`` that something started or ended."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def _run(self, tenant_id: str, key: str, job: Job) -> None:
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
        tenant); the run itself then waits here, so the bound is per tenant. While it
        waits, the job gives its place in ``max_running`` to other tenants' jobs; once
        it has the slot it takes a place again as soon as one is free, before any job
        not yet admitted.
        """
        limit = self._tenant_slots.setdefault(tenant_id, asyncio.Semaphore(self.per_tenant))
        if not limit.locked():
            async with limit:
                yield
            return
        self._aside += 1
        self._admit()
        acquired = False
        try:
            await limit.acquire()
            acquired = True
            self._returning += 1
            try:
                while self._active >= self.max_running:
                    await self._changed()
            finally:
                self._returning -= 1
        except BaseException:
            if acquired:
                limit.release()
            raise
        finally:
            self._aside -= 1
        try:
            yield
        finally:
            limit.release()

    @property
    def _active(self) -> int:
        """Running jobs that hold a place in ``max_running``."""
        return len(self._tasks) - self._aside

    async def _changed(self) -> None:
        """Wait until a job starts or ends."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    @property
    def queued(self) -> int:
        """Jobs submitted and not yet admitted."""
        return len(self._queued)

    @property
    def running(self) -> int:
        """Jobs admitted and not finished."""
        return len(self._tasks)

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished: queued plus running."""
        return len(self._queued) + len(self._tasks)

    async def wait_idle(self) -> None:
        """Wait until every submitted job has finished (tests and the demo use this)."""
        while self._queued or self._tasks:
            if self._tasks:
                await asyncio.wait(list(self._tasks.values()))
                continue
            await self._changed()

    async def shutdown(self) -> None:
        """Stop admitting, park what never started, let running jobs finish within the grace.

        Jobs still running after ``grace_s`` are cancelled.
        """
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        never_started = list(self._queued.values())
        self._queues.clear()
        self._turns.clear()
        dropped = [entry for entry in never_started if entry.park is None]
        for entry in dropped:
            del self._queued[entry.key]
        for entry in never_started:
            if entry.park is not None:
                self._start(entry, entry.park)
        self.stats.parked += len(never_started) - len(dropped)
        self.stats.dropped += len(dropped)
        if dropped:
            log.warning("jobs not started before shutdown were dropped", count=len(dropped))
        self._wake()
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
