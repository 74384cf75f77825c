from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from bots.executor import Executor

LONG_DELAY_S = 3600.0
"""A maximum admission delay no test waits out: admission then depends on requests only."""


async def turns(n: int = 5) -> None:
    """Let the event loop run everything that is ready, a few times over."""
    for _ in range(n):
        await asyncio.sleep(0)


class Probe:
    """Jobs that record when they start and run until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.total = 0
        self.peak_total = 0
        self.release = asyncio.Event()

    def job(self, tenant: str, name: str, *, hold: bool = True) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            self.started.append(name)
            self.running[tenant] = self.running.get(tenant, 0) + 1
            self.peak[tenant] = max(self.peak.get(tenant, 0), self.running[tenant])
            self.total += 1
            self.peak_total = max(self.peak_total, self.total)
            if hold:
                await self.release.wait()
            self.running[tenant] -= 1
            self.total -= 1
        return run


async def test_one_tenant_cannot_take_every_slot() -> None:
    executor = Executor(per_tenant=2)
    probe = Probe()
    quiet_done = asyncio.Event()

    async def quiet() -> None:
        await probe.job("quiet", "q", hold=False)()
        quiet_done.set()

    for i in range(10):
        executor.submit("noisy", f"n{i}", probe.job("noisy", f"n{i}"))
    executor.submit("quiet", "q", quiet)
    await asyncio.wait_for(quiet_done.wait(), 2)
    assert probe.peak["noisy"] == 2
    probe.release.set()
    await executor.wait_idle()
    assert executor.stats.finished == 11


async def test_the_same_run_is_never_executed_twice_at_once() -> None:
    executor = Executor()
    gate = asyncio.Event()
    calls = 0

    async def run() -> None:
        nonlocal calls
        calls += 1
        await gate.wait()

    assert executor.submit("t", "run-1", run)
    assert not executor.submit("t", "run-1", run)
    gate.set()
    await executor.wait_idle()
    assert calls == 1 and executor.stats.duplicates == 1
    assert executor.submit("t", "run-1", run)
    await executor.wait_idle()


async def test_a_queued_job_is_a_duplicate_too() -> None:
    executor = Executor(max_delay_s=LONG_DELAY_S)
    probe = Probe()
    with executor.serving():
        assert executor.submit("t", "run-1", probe.job("t", "first", hold=False))
        assert not executor.submit("t", "run-1", probe.job("t", "second", hold=False))
    await executor.wait_idle()
    assert probe.started == ["first"] and executor.stats.duplicates == 1


async def test_failures_are_counted_and_shutdown_cancels_after_the_grace_period() -> None:
    executor = Executor(grace_s=0.05)

    async def boom() -> None:
        raise ValueError("broken tool")

    async def forever() -> None:
        await asyncio.sleep(3600)

    executor.submit("t", "a", boom)
    executor.submit("t", "b", forever)
    await asyncio.sleep(0.01)
    await executor.shutdown()
    assert executor.stats.failed == 1 and executor.stats.cancelled == 1
    assert executor.in_flight == 0


async def test_tenant_slots_bound_runs_of_one_tenant_across_jobs() -> None:
    executor = Executor(per_tenant=1)
    inside = 0
    peak = 0
    release = asyncio.Event()

    def job() -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            nonlocal inside, peak
            async with executor.slot("acme"):
                inside += 1
                peak = max(peak, inside)
                await release.wait()
                inside -= 1
        return run

    for key in ("workspace-1:a", "workspace-2:b"):
        executor.submit(key.split(":")[0], key, job())
    await asyncio.sleep(0.05)
    assert (inside, peak) == (1, 1)
    release.set()
    await executor.wait_idle()
    assert peak == 1 and executor.stats.finished == 2


async def test_a_job_waits_while_a_request_is_in_flight_and_starts_after_it() -> None:
    executor = Executor(max_delay_s=LONG_DELAY_S)
    probe = Probe()

    with executor.serving():
        executor.submit("acme", "run-1", probe.job("acme", "run-1", hold=False))
        await turns()
        assert probe.started == []
        assert (executor.queued, executor.running, executor.in_flight) == (1, 0, 1)
        with executor.serving():
            await turns()
        assert probe.started == [], "one request ending while another is in flight admits nothing"
    await executor.wait_idle()

    assert probe.started == ["run-1"]
    assert (executor.stats.started, executor.stats.finished) == (1, 1)


async def test_a_job_waits_for_the_burst_to_be_over_not_only_for_one_request() -> None:
    executor = Executor(max_delay_s=LONG_DELAY_S, quiet_s=LONG_DELAY_S)
    probe = Probe()

    with executor.serving():
        executor.submit("acme", "run-1", probe.job("acme", "run-1", hold=False))
    await turns()
    assert probe.started == [] and executor.queued == 1, "a gap between requests is no quiet"

    executor.quiet_s = 0.01
    with executor.serving():  # the burst's last request
        pass
    await executor.wait_idle()
    assert probe.started == ["run-1"]


async def test_without_requests_in_flight_a_job_starts_at_once() -> None:
    executor = Executor(max_delay_s=LONG_DELAY_S)
    probe = Probe()

    executor.submit("acme", "run-1", probe.job("acme", "run-1"))
    await turns()

    assert probe.started == ["run-1"] and executor.running == 1
    probe.release.set()
    await executor.wait_idle()


async def test_the_maximum_delay_admits_jobs_under_an_unbroken_stream_of_requests() -> None:
    executor = Executor(max_delay_s=0.02)
    probe = Probe()
    stop = asyncio.Event()

    async def one_request() -> None:
        with executor.serving():
            await asyncio.sleep(0.005)

    async def stream() -> None:
        # Overlapping requests: a new one starts before the previous one ends.
        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            task = asyncio.create_task(one_request())
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(0.002)
        await asyncio.gather(*pending)

    with executor.serving():
        streaming = asyncio.create_task(stream())
        for i in range(5):
            executor.submit("acme", f"run-{i}", probe.job("acme", f"run-{i}", hold=False))
            await asyncio.sleep(0.003)
        await asyncio.wait_for(executor.wait_idle(), 5)
        stop.set()
        await streaming

    assert probe.started == [f"run-{i}" for i in range(5)]
    assert executor.stats.finished == 5


async def test_the_process_bound_holds_across_tenants() -> None:
    executor = Executor(per_tenant=2, max_running=3)
    probe = Probe()
    for tenant in ("a", "b", "c", "d"):
        for i in range(2):
            executor.submit(tenant, f"{tenant}{i}", probe.job(tenant, f"{tenant}{i}"))
    await turns()

    assert probe.total == 3 and (executor.running, executor.queued) == (3, 5)
    probe.release.set()
    await executor.wait_idle()
    assert probe.peak_total == 3
    assert sorted(probe.started) == sorted(f"{t}{i}" for t in "abcd" for i in range(2))


async def test_tenants_take_turns_for_the_process_bound() -> None:
    executor = Executor(per_tenant=2, max_running=2)
    gates = {f"n{i}": asyncio.Event() for i in range(6)}
    started: list[str] = []

    def job(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            started.append(name)
            if name in gates:
                await gates[name].wait()
        return run

    for name in gates:
        executor.submit("noisy", name, job(name))
    executor.submit("quiet", "q", job("q"))
    await turns()
    assert started == ["n0", "n1"]

    gates["n0"].set()
    await turns()
    assert started[:3] == ["n0", "n1", "q"], "the quiet tenant goes before the noisy one's third"
    for gate in gates.values():
        gate.set()
    await executor.wait_idle()
    assert started == ["n0", "n1", "q", "n2", "n3", "n4", "n5"]


async def test_a_tenants_jobs_start_in_the_order_they_were_submitted() -> None:
    executor = Executor(per_tenant=1, max_delay_s=LONG_DELAY_S)
    probe = Probe()
    with executor.serving():
        for i in range(6):
            executor.submit("acme", f"run-{i}", probe.job("acme", f"run-{i}", hold=False))
            executor.submit("globex", f"g-{i}", probe.job("globex", f"g-{i}", hold=False))
    await executor.wait_idle()

    assert [name for name in probe.started if name.startswith("run")] == [
        f"run-{i}" for i in range(6)]
    assert [name for name in probe.started if name.startswith("g")] == [
        f"g-{i}" for i in range(6)]
    assert probe.peak == {"acme": 1, "globex": 1}


async def test_no_job_is_lost_among_requests_tenants_and_failures() -> None:
    executor = Executor(per_tenant=2, max_running=3, max_delay_s=0.01)
    rng = random.Random(7)
    ran: list[str] = []

    def job(name: str, fails: bool) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await asyncio.sleep(rng.random() / 200)
            ran.append(name)
            if fails:
                raise RuntimeError("a failing run still counts as run")
        return run

    async def request(i: int) -> None:
        with executor.serving():
            await asyncio.sleep(rng.random() / 500)
            executor.submit(f"tenant-{i % 5}", f"run-{i}", job(f"run-{i}", fails=i % 7 == 0))

    await asyncio.gather(*(request(i) for i in range(120)))
    await executor.wait_idle()

    assert sorted(ran) == sorted(f"run-{i}" for i in range(120))
    stats = executor.stats
    assert (stats.submitted, stats.started) == (120, 120)
    assert (stats.finished, stats.failed, stats.cancelled) == (120 - 18, 18, 0)
    assert executor.in_flight == 0


async def test_wait_idle_waits_for_queued_jobs() -> None:
    executor = Executor(max_delay_s=LONG_DELAY_S)
    probe = Probe()
    with executor.serving():
        executor.submit("acme", "run-1", probe.job("acme", "run-1", hold=False))
        waiting = asyncio.create_task(executor.wait_idle())
        await turns()
        assert not waiting.done()
    await asyncio.wait_for(waiting, 2)
    assert probe.started == ["run-1"]


async def test_shutdown_parks_jobs_that_never_started_and_drops_those_without_a_park() -> None:
    executor = Executor(max_delay_s=LONG_DELAY_S, grace_s=5)
    probe = Probe()
    parked: list[str] = []

    def park(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            parked.append(name)
        return run

    executor.submit("acme", "running", probe.job("acme", "running"), park=park("running"))
    await turns()
    with executor.serving():
        executor.submit("acme", "queued-1", probe.job("acme", "queued-1"), park=park("queued-1"))
        executor.submit("globex", "queued-2", probe.job("globex", "queued-2"),
                        park=park("queued-2"))
        executor.submit("globex", "home", probe.job("globex", "home"))
        closing = asyncio.create_task(executor.shutdown())
        await turns()
        assert sorted(parked) == ["queued-1", "queued-2"]
        probe.release.set()
        await closing

    assert probe.started == ["running"], "nothing is admitted once shutdown began"
    stats = executor.stats
    assert (stats.started, stats.parked, stats.dropped) == (1, 2, 1)
    assert (stats.finished, stats.cancelled) == (3, 0)
    assert executor.in_flight == 0


async def test_a_job_waiting_for_its_tenants_slot_leaves_its_place_to_other_tenants() -> None:
    """Two workspaces of one tenant: the second waits for the tenant, not the process."""
    executor = Executor(per_tenant=1, max_running=2, max_delay_s=LONG_DELAY_S)
    release = asyncio.Event()
    inside: dict[str, int] = {}
    peak_active = 0

    def job(tenant: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            nonlocal peak_active
            async with executor.slot(tenant):
                inside[tenant] = inside.get(tenant, 0) + 1
                peak_active = max(peak_active, sum(inside.values()))
                await release.wait()
                inside[tenant] -= 1
        return run

    executor.submit("workspace-1", "w1", job("acme"))
    executor.submit("workspace-2", "w2", job("acme"))
    executor.submit("globex", "g1", job("globex"))
    await turns(10)
    # w1 runs, w2 waits for acme's slot without holding the second place: globex runs.
    assert inside == {"acme": 1, "globex": 1}
    executor.submit("initech", "i1", job("initech"))
    await turns(10)
    assert "initech" not in inside, "the process bound still holds"
    release.set()
    await executor.wait_idle()
    assert peak_active == 2
    assert executor.stats.finished == 4 and executor.running == 0


async def test_a_job_that_got_its_tenants_slot_takes_the_next_free_place_first() -> None:
    executor = Executor(per_tenant=1, max_running=2, max_delay_s=LONG_DELAY_S)
    gates = {name: asyncio.Event() for name in ("w1", "w2", "g1", "i1")}
    order: list[str] = []

    def job(tenant: str, name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            async with executor.slot(tenant):
                order.append(name)
                await gates[name].wait()
        return run

    executor.submit("workspace-1", "w1", job("acme", "w1"))
    executor.submit("workspace-2", "w2", job("acme", "w2"))
    executor.submit("globex", "g1", job("globex", "g1"))
    executor.submit("initech", "i1", job("initech", "i1"))
    await turns(10)
    # w2 waits for acme's slot and left its place to g1; the process is full for i1.
    assert order == ["w1", "g1"] and executor.queued == 1
    gates["w1"].set()  # acme's slot goes to w2, and w1's place too, not to the queued i1
    await turns(10)
    assert order == ["w1", "g1", "w2"] and executor.queued == 1
    gates["g1"].set()
    await turns(10)
    assert order == ["w1", "g1", "w2", "i1"]
    gates["w2"].set()
    gates["i1"].set()
    await executor.wait_idle()
    assert executor.stats.finished == 4
