from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bots.executor import Executor


async def test_one_tenant_cannot_take_every_slot() -> None:
    executor = Executor(per_tenant=2)
    running: dict[str, int] = {"noisy": 0, "quiet": 0}
    peak: dict[str, int] = {"noisy": 0, "quiet": 0}
    quiet_done = asyncio.Event()
    release = asyncio.Event()

    def job(tenant: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            running[tenant] += 1
            peak[tenant] = max(peak[tenant], running[tenant])
            if tenant == "noisy":
                await release.wait()
            running[tenant] -= 1
            if tenant == "quiet":
                quiet_done.set()
        return run

    for i in range(10):
        executor.submit("noisy", f"n{i}", job("noisy"))
    executor.submit("quiet", "q", job("quiet"))
    await asyncio.wait_for(quiet_done.wait(), 2)
    assert peak["noisy"] == 2
    release.set()
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
