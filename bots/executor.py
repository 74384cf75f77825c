"""The in-process run executor: every background job has an owner, and runs are bounded.

Transports acknowledge at once and hand the rest of the work to ``submit`` as a *job*,
keyed by what must not run twice at once (a run id, a Slack event id). The executor owns
every job's task in an ``asyncio.TaskGroup``; a failing job is logged and counted.

A job first waits at the ``QuietGate``, so that the jobs of a burst of requests start
once the burst has been answered: they share the event loop with the acknowledgements.
A job that runs an agent run learns its tenant first (a Slack request names a workspace,
and workspaces can share a tenant), then runs inside ``slot(tenant_id)``: one of the
tenant's ``per_tenant`` places, then one of the process's ``per_process``. A job waiting
for its tenant holds no process place.

Shutdown stops accepting jobs and cancels every job that has not entered its slot: one
waiting at the gate or for a place at once, one still preparing (a Slack request being
accepted) when it asks for its slot, so that its preparation is never cut in half. A
cancelled job is handed to its ``park`` (Slack records the request as a ``queued`` run,
which the next start resumes), or dropped if it has none, which must be safe for it.
Jobs in their slot, and the parks, get ``grace_s``; those still running are then
cancelled, leaving their runs at the last checkpoint for the next start to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Self

from core.logs import log

Job = Callable[[], Awaitable[object]]

_KEY: ContextVar[str | None] = ContextVar("executor_job", default=None)
"""The key of the job whose task is running, for ``slot``."""


@dataclass
class ExecutorStats:
    """Counters for health checks and tests.

    ``failed`` counts failed parks too. At shutdown, ``cancelled`` counts the jobs
    cancelled in (or after) their slot; ``parked`` and ``dropped`` those cancelled
    before it, with a park and without one.
    """

    submitted: int = 0
    started: int = 0
    finished: int = 0
    failed: int = 0
    duplicates: int = 0
    cancelled: int = 0
    parked: int = 0
    dropped: int = 0


class QuietGate:
    """Holds jobs back while web requests are in flight, so that runs start between bursts.

    It opens once no request has been in flight for ``quiet_s``: the requests of a burst
    arrive a little apart, and "none in flight" alone would let runs in between them. A
    job waits ``max_delay_s`` at most, so a steady stream of requests cannot starve runs;
    a quarter of a second outlasts a burst of 200 acknowledgements on two cores.
    """

    def __init__(self, *, quiet_s: float = 0.02, max_delay_s: float = 0.25) -> None:
        self.quiet_s = quiet_s
        self.max_delay_s = max_delay_s
        self._in_flight = 0
        self._open = asyncio.Event()
        self._open.set()
        self._opening: asyncio.TimerHandle | None = None

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Keep the gate shut while one web request is in flight (a middleware's job)."""
        self._in_flight += 1
        self._open.clear()
        if self._opening is not None:
            self._opening.cancel()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._opening = asyncio.get_running_loop().call_later(self.quiet_s,
                                                                      self._open.set)

    def open(self) -> None:
        """Let every job through at once (shutdown: they go to their park)."""
        self._open.set()

    async def wait(self) -> None:
        """Until the gate is open, or ``max_delay_s`` at most."""
        if self._open.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_delay_s):
                await self._open.wait()


class Executor:
    """Runs jobs in owned tasks, after the gate and within the tenant and process bounds.

    Use it as ``async with Executor(...) as executor``; leaving it calls ``shutdown``.

    Args:
        per_tenant: How many runs of one tenant may hold a slot at once.
        per_process: How many runs may hold a slot at once, all tenants together.
        grace_s: How long shutdown waits for running jobs and parks before cancelling.
        gate: Where jobs wait for the requests in flight; a fresh ``QuietGate`` by default.
    """

    def __init__(self, *, per_tenant: int = 4, per_process: int = 16, grace_s: float = 10.0,
                 gate: QuietGate | None = None) -> None:
        self.per_tenant = per_tenant
        self.grace_s = grace_s
        self.gate = gate or QuietGate()
        self.stats = ExecutorStats()
        self._process = asyncio.Semaphore(per_process)
        self._tenants: dict[str, asyncio.Semaphore] = {}
        self._group = asyncio.TaskGroup()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._at_gate: set[str] = set()
        self._for_slot: set[str] = set()
        self._closing = False

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.shutdown()
        finally:
            # Every job has ended (or been cancelled) by now; an error of the ``async with``
            # body propagates as it is, not wrapped in the group's ExceptionGroup.
            await self._group.__aexit__(None, None, None)

    def submit(self, key: str, job: Job, *, park: Job | None = None) -> bool:
        """Start ``job`` unless a job with the same key is still in flight.

        The key is the run's (or the request's) id, so the same run is never executed
        twice at once in this process (a double-clicked Resume, a retried event).

        Args:
            park: What to do instead if shutdown comes before the job entered its slot;
                without it, the job is dropped then.

        Returns:
            ``False`` if refused as a duplicate.

        Raises:
            RuntimeError: the executor is shutting down.
        """
        if self._closing:
            raise RuntimeError("executor is shutting down")
        if key in self._tasks:
            self.stats.duplicates += 1
            return False
        self._at_gate.add(key)
        self._tasks[key] = self._group.create_task(self._run(key, job, park), name=f"job:{key}")
        self.stats.submitted += 1
        return True

    @asynccontextmanager
    async def slot(self, tenant_id: str) -> AsyncIterator[None]:
        """Hold one of the tenant's places, then one of the process's, for a run.

        Raises:
            asyncio.CancelledError: shutdown began before the job got its places; the
                executor hands the job to its park.
        """
        key = _KEY.get()
        if key is not None:
            self._for_slot.add(key)
        if self._closing:
            raise asyncio.CancelledError
        tenant = self._tenants.setdefault(tenant_id, asyncio.Semaphore(self.per_tenant))
        async with tenant, self._process:
            if key is not None:
                self._for_slot.discard(key)
            yield

    async def _run(self, key: str, job: Job, park: Job | None) -> None:
        _KEY.set(key)
        try:
            if await self._ran(key, job):
                return
            if park is None:
                self.stats.dropped += 1
                log.info("job dropped at shutdown", job=key)
                return
            self.stats.parked += 1
            await self._guarded(key, park)
        finally:
            self._at_gate.discard(key)
            self._for_slot.discard(key)
            del self._tasks[key]

    async def _ran(self, key: str, job: Job) -> bool:
        """Run the job; ``False`` if shutdown came before it entered its slot."""
        try:
            await self.gate.wait()
            self._at_gate.discard(key)
            if self._closing:
                return False
            self.stats.started += 1
            await self._guarded(key, job)
        except asyncio.CancelledError:
            if key not in self._for_slot:
                self.stats.cancelled += 1
                raise
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()  # the cancellation is handled: the job goes to its park
            return False
        return True

    async def _guarded(self, key: str, job: Job) -> None:
        try:
            await job()
        except Exception:
            self.stats.failed += 1
            log.exception("background job failed", job=key)
        else:
            self.stats.finished += 1

    @property
    def queued(self) -> int:
        """Jobs waiting at the gate or for a slot."""
        return len(self._at_gate) + len(self._for_slot)

    @property
    def running(self) -> int:
        """Jobs started and not waiting for a slot."""
        return len(self._tasks) - self.queued

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished."""
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Wait until every submitted job has finished (tests and the demo use this)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def shutdown(self) -> None:
        """Stop accepting, park what has not entered its slot, let the rest finish in time.

        Jobs still running after ``grace_s`` are cancelled.
        """
        self._closing = True
        self.gate.open()
        for key in self._for_slot:
            self._tasks[key].cancel()
        if not self._tasks:
            return
        _done, late = await asyncio.wait(list(self._tasks.values()), timeout=self.grace_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("runs cancelled at shutdown; they resume on the next start",
                        count=len(late))
