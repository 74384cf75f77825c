"""Tests of ``bots.executor``: the gate, the two bounds, ownership and shutdown.

Nothing here waits for time to pass to decide an outcome: jobs hold on events, and the
loop is turned until everything ready has run.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from bots.executor import Executor, QuietGate

LONG_S = 3600.0
"""A delay no test waits out."""

Job = Callable[[], Awaitable[None]]


async def turns(n: int = 5) -> None:
    """Let the event loop run everything that is ready, a few times over."""
    for _ in range(n):
        await asyncio.sleep(0)


def shut_gate() -> QuietGate:
    """A gate that only a quiet moment opens, and no job waits out."""
    return QuietGate(quiet_s=0, max_delay_s=LONG_S)


class Probe:
    """Runs that record when they start, in their tenant's slot, and hold it until released."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.started: list[str] = []
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self.release = asyncio.Event()

    def job(self, tenant: str, name: str, *, hold: bool = True) -> Job:
        async def run() -> None:
            async with self.executor.slot(tenant):
                self.started.append(name)
                self.running[tenant] = self.running.get(tenant, 0) + 1
                self.peak[tenant] = max(self.peak.get(tenant, 0), self.running[tenant])
                self.peak_total = max(self.peak_total, sum(self.running.values()))
                if hold:
                    await self.release.wait()
                self.running[tenant] -= 1
        return run


def recorder(into: list[str], name: str) -> Job:
    async def run() -> None:
        into.append(name)
    return run


async def test_one_tenant_cannot_take_every_slot() -> None:
    async with Executor(per_tenant=2) as executor:
        probe = Probe(executor)
        for i in range(10):
            executor.submit(f"n{i}", probe.job("noisy", f"n{i}"))
        executor.submit("q", probe.job("quiet", "q", hold=False))
        await turns()

        assert probe.peak == {"noisy": 2, "quiet": 1} and "q" in probe.started
        probe.release.set()
        await executor.wait_idle()
    assert executor.stats.finished == 11


async def test_the_same_run_is_never_executed_twice_at_once() -> None:
    async with Executor() as executor:
        gate = asyncio.Event()
        calls = 0

        async def run() -> None:
            nonlocal calls
            calls += 1
            await gate.wait()

        assert executor.submit("run-1", run)
        assert not executor.submit("run-1", run)
        gate.set()
        await executor.wait_idle()
        assert calls == 1 and executor.stats.duplicates == 1
        assert executor.submit("run-1", run), "once finished, the key is free again"


async def test_a_job_waiting_at_the_gate_is_a_duplicate_too() -> None:
    async with Executor(gate=shut_gate()) as executor:
        started: list[str] = []
        with executor.gate.serving():
            assert executor.submit("run-1", recorder(started, "first"))
            assert not executor.submit("run-1", recorder(started, "second"))
        await executor.wait_idle()
    assert started == ["first"] and executor.stats.duplicates == 1


async def test_failures_are_counted_and_shutdown_cancels_after_the_grace_period() -> None:
    async with Executor(grace_s=0) as executor:
        forever = asyncio.Event()

        async def boom() -> None:
            raise ValueError("broken tool")

        async def stuck() -> None:
            async with executor.slot("t"):
                await forever.wait()

        executor.submit("a", boom)
        executor.submit("b", stuck)
        await turns()
        await executor.shutdown()

        assert executor.stats.failed == 1 and executor.stats.cancelled == 1
        assert executor.in_flight == 0


async def test_the_tenant_bound_holds_across_jobs() -> None:
    async with Executor(per_tenant=1) as executor:
        probe = Probe(executor)
        executor.submit("workspace-1:a", probe.job("acme", "a"))
        executor.submit("workspace-2:b", probe.job("acme", "b"))
        await turns()

        assert probe.started == ["a"] and (executor.running, executor.queued) == (1, 1)
        probe.release.set()
        await executor.wait_idle()
    assert probe.peak == {"acme": 1} and executor.stats.finished == 2


async def test_a_job_waits_at_the_gate_while_a_request_is_in_flight() -> None:
    async with Executor(gate=shut_gate()) as executor:
        started: list[str] = []
        with executor.gate.serving():
            executor.submit("run-1", recorder(started, "run-1"))
            await turns()
            assert started == []
            assert (executor.queued, executor.running, executor.in_flight) == (1, 0, 1)
            with executor.gate.serving():
                await turns()
            assert started == [], "one request ending while another is in flight admits nothing"
        await executor.wait_idle()

    assert started == ["run-1"]
    assert (executor.stats.started, executor.stats.finished) == (1, 1)


async def test_a_gap_between_requests_does_not_open_the_gate() -> None:
    gate = QuietGate(quiet_s=LONG_S, max_delay_s=LONG_S)
    async with Executor(gate=gate) as executor:
        started: list[str] = []
        with gate.serving():
            executor.submit("run-1", recorder(started, "run-1"))
        await turns()
        assert started == [] and executor.queued == 1, "a gap between requests is no quiet"

        gate.quiet_s = 0
        with gate.serving():  # the burst's last request
            pass
        await executor.wait_idle()
    assert started == ["run-1"]


async def test_without_requests_in_flight_a_job_starts_at_once() -> None:
    async with Executor(gate=shut_gate()) as executor:
        probe = Probe(executor)
        executor.submit("run-1", probe.job("acme", "run-1"))
        await turns()

        assert probe.started == ["run-1"] and executor.running == 1
        probe.release.set()


async def test_the_maximum_delay_admits_jobs_while_requests_stay_in_flight() -> None:
    gate = QuietGate(quiet_s=LONG_S, max_delay_s=0.01)
    async with Executor(gate=gate) as executor:
        started: list[str] = []
        with gate.serving():
            for i in range(5):
                executor.submit(f"run-{i}", recorder(started, f"run-{i}"))
            await asyncio.wait_for(executor.wait_idle(), 5)
            assert started == [f"run-{i}" for i in range(5)], "admitted with a request in flight"


async def test_the_process_bound_holds_across_tenants() -> None:
    async with Executor(per_tenant=2, per_process=3) as executor:
        probe = Probe(executor)
        for tenant in "abcd":
            for i in range(2):
                executor.submit(f"{tenant}{i}", probe.job(tenant, f"{tenant}{i}"))
        await turns()

        assert len(probe.started) == 3 and (executor.running, executor.queued) == (3, 5)
        probe.release.set()
        await executor.wait_idle()
    assert probe.peak_total == 3
    assert sorted(probe.started) == sorted(f"{t}{i}" for t in "abcd" for i in range(2))


async def test_tenants_take_turns_for_the_process_bound() -> None:
    async with Executor(per_tenant=2, per_process=2) as executor:
        gates = {f"n{i}": asyncio.Event() for i in range(6)}
        started: list[str] = []

        def job(tenant: str, name: str) -> Job:
            async def run() -> None:
                async with executor.slot(tenant):
                    started.append(name)
                    if name in gates:
                        await gates[name].wait()
            return run

        for name in gates:
            executor.submit(name, job("noisy", name))
        executor.submit("q", job("quiet", "q"))
        await turns()
        assert started == ["n0", "n1"]

        gates["n0"].set()
        await turns()
        assert started[:3] == ["n0", "n1", "q"], "the quiet tenant goes before the noisy third"
        for gate in gates.values():
            gate.set()
        await executor.wait_idle()
    assert started == ["n0", "n1", "q", "n2", "n3", "n4", "n5"]


async def test_a_tenants_jobs_start_in_the_order_they_were_submitted() -> None:
    async with Executor(per_tenant=1, gate=shut_gate()) as executor:
        probe = Probe(executor)
        with executor.gate.serving():
            for i in range(6):
                executor.submit(f"a-{i}", probe.job("acme", f"a-{i}", hold=False))
                executor.submit(f"g-{i}", probe.job("globex", f"g-{i}", hold=False))
        await executor.wait_idle()

    assert [name for name in probe.started if name.startswith("a")] == [
        f"a-{i}" for i in range(6)]
    assert [name for name in probe.started if name.startswith("g")] == [
        f"g-{i}" for i in range(6)]
    assert probe.peak == {"acme": 1, "globex": 1}


async def test_no_job_is_lost_among_requests_tenants_and_failures() -> None:
    rng = random.Random(7)
    ran: list[str] = []
    async with Executor(per_tenant=2, per_process=3, gate=shut_gate()) as executor:

        def job(tenant: str, name: str, fails: bool) -> Job:
            async def run() -> None:
                async with executor.slot(tenant):
                    await turns(rng.randrange(4))
                    ran.append(name)
                if fails:
                    raise RuntimeError("a failing run still counts as run")
            return run

        async def request(i: int) -> None:
            with executor.gate.serving():
                await turns(rng.randrange(3))
                executor.submit(f"run-{i}", job(f"tenant-{i % 5}", f"run-{i}", i % 7 == 0))

        await asyncio.gather(*(request(i) for i in range(120)))
        await executor.wait_idle()

    assert sorted(ran) == sorted(f"run-{i}" for i in range(120))
    stats = executor.stats
    assert (stats.submitted, stats.started) == (120, 120)
    assert (stats.finished, stats.failed, stats.cancelled) == (120 - 18, 18, 0)
    assert executor.in_flight == 0


async def test_wait_idle_waits_for_jobs_at_the_gate() -> None:
    async with Executor(gate=shut_gate()) as executor:
        started: list[str] = []
        with executor.gate.serving():
            executor.submit("run-1", recorder(started, "run-1"))
            waiting = asyncio.create_task(executor.wait_idle())
            await turns()
            assert not waiting.done()
        await asyncio.wait_for(waiting, 5)
    assert started == ["run-1"]


async def test_shutdown_parks_what_has_not_entered_its_slot() -> None:
    """At the gate or waiting for a slot: parked, or dropped without a park; in a slot: run."""
    async with Executor(per_tenant=1, gate=shut_gate()) as executor:
        probe = Probe(executor)
        parked: list[str] = []
        executor.submit("running", probe.job("acme", "running"), park=recorder(parked, "x"))
        executor.submit("for-slot", probe.job("acme", "for-slot"),
                        park=recorder(parked, "for-slot"))
        await turns()
        with executor.gate.serving():
            executor.submit("gate-1", probe.job("acme", "gate-1"), park=recorder(parked, "gate-1"))
            executor.submit("gate-2", probe.job("globex", "gate-2"),
                            park=recorder(parked, "gate-2"))
            executor.submit("home", probe.job("globex", "home"))
            closing = asyncio.create_task(executor.shutdown())
            await turns()
            assert sorted(parked) == ["for-slot", "gate-1", "gate-2"]
            assert not closing.done(), "the job in its slot has its grace period"
            probe.release.set()
            await closing

    assert probe.started == ["running"], "nothing starts once shutdown began"
    stats = executor.stats
    assert (stats.started, stats.parked, stats.dropped, stats.cancelled) == (2, 3, 1, 0)
    assert executor.in_flight == 0


async def test_a_job_prepared_during_shutdown_is_parked_when_it_asks_for_its_slot() -> None:
    async with Executor() as executor:
        prepared = asyncio.Event()
        ran: list[str] = []
        parked: list[str] = []

        async def request() -> None:
            await prepared.wait()  # accepting the request: not interrupted by shutdown
            ran.append("prepared")
            async with executor.slot("acme"):
                ran.append("run")

        executor.submit("req", request, park=recorder(parked, "req"))
        await turns()
        closing = asyncio.create_task(executor.shutdown())
        await turns()
        assert not closing.done()
        prepared.set()
        await closing

    assert (ran, parked) == (["prepared"], ["req"])


async def test_submitting_after_shutdown_began_is_refused() -> None:
    async with Executor() as executor:
        await executor.shutdown()
        try:
            executor.submit("late", recorder([], "late"))
        except RuntimeError as refused:
            assert "shutting down" in str(refused)
        else:
            raise AssertionError("a job was accepted during shutdown")


async def test_a_job_waiting_for_its_tenant_holds_no_process_place() -> None:
    """Two workspaces of one tenant: the second waits for the tenant, not the process."""
    async with Executor(per_tenant=1, per_process=2) as executor:
        probe = Probe(executor)
        executor.submit("w1", probe.job("acme", "w1"))
        executor.submit("w2", probe.job("acme", "w2"))
        executor.submit("g1", probe.job("globex", "g1"))
        await turns(10)
        assert probe.started == ["w1", "g1"], "w2 waits for acme and leaves its place to globex"
        executor.submit("i1", probe.job("initech", "i1"))
        await turns(10)
        assert "i1" not in probe.started, "the process bound still holds"
        probe.release.set()
        await executor.wait_idle()
    assert probe.peak_total == 2 and executor.stats.finished == 4


async def test_leaving_the_executor_drains_its_jobs() -> None:
    finished: list[str] = []

    async def slow() -> None:
        await turns(20)
        finished.append("slow")

    async def boom() -> None:
        raise RuntimeError("logged, not raised out of the executor")

    async with Executor() as executor:
        executor.submit("slow", slow)
        executor.submit("boom", boom)
        await turns(2)  # both started: shutdown lets them end
    assert finished == ["slow"] and executor.stats.failed == 1
