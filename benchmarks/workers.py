"""Runs through worker processes: throughput, and the wait from queued to started.

Every run here waits on a model that takes 2 s to answer (one model call, no tool),
so a worker's throughput is bounded by how many runs it holds at once
(``--concurrency``) and the queue's overhead around them; the tenancy layer's own cost
per run is a few database transactions. Runs are queued as ``tenantry serve`` queues
them on PostgreSQL (``AgentService.queue`` and a signed ``run`` job,
``bots.runner.Queued``); the workers are real ``tenantry worker`` processes
(``bots.worker.work``) whose model is the 2 s stand-in. Three measurements, on a
fresh database:

- throughput: ``--runs`` runs queued at once over 20 tenants (so the per-tenant bound
  of 4 places is not the limit), through 1 worker, then through 2; runs per second
  from the first enqueue to the last run's completion;
- queue latency: runs queued at a steady rate well below capacity (``--rate`` per
  second for ``--seconds``) through 2 workers; from a run's queuing
  (``runs.created_at``) to its start (its ``run.started`` event), p50 and p99;
- 100 tenants at once: one run each, queued together, through 2 workers; the same
  latency and the time to the last completion.

    .venv/bin/python benchmarks/workers.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path

from figures import create_database, drop_database
from pydantic import SecretStr
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import text

import bots.runtime
from bots.jobs.queue import JobQueue
from bots.jobs.schema import install_queue_schema
from bots.runner import Queued
from bots.worker import work
from core.agent import AgentService
from core.audit.keys import load_keys
from core.audit.log import AuditLog
from core.db.engine import Database
from core.db.migrate import upgrade
from core.logs import configure
from core.models import ModelFactory
from core.settings import Settings
from core.tenants import Plan, create_plan, create_tenant

MODEL_S = 2.0
JOB_KEY = "bench-job-key"
TARGET_SPEEDUP = 1.8
PLAN = Plan(id="bench", monthly_tokens=10**9, monthly_cost_microcents=10**15,
            monthly_tool_calls=10**6, run_tokens=200_000, run_tool_calls=20,
            run_walltime_ms=60_000, run_cost_microcents=10**10, capabilities=frozenset())


async def two_seconds(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    await asyncio.sleep(MODEL_S)
    return ModelResponse(parts=[TextPart("done")])


class SlowModels(ModelFactory):
    """Every model id answers after ``MODEL_S``."""

    def check(self, model_id: str) -> str:
        return model_id

    def get(self, model_id: str) -> Model:
        return FunctionModel(two_seconds, model_name=model_id)


def worker_main() -> None:
    """A worker process of the benchmark (``--worker``)."""
    configure("WARNING")
    bots.runtime.ModelFactory = SlowModels  # type: ignore[attr-defined]
    asyncio.run(work(Settings()))


class Bench:
    """The benchmark's side: a database, the queue, and the worker processes."""

    def __init__(self, url: str, data_dir: Path, concurrency: int) -> None:
        self.settings = Settings(database_url=url, data_dir=data_dir, model="sandbox",
                                 embedder="hashing", job_key=SecretStr(JOB_KEY))
        self.concurrency = concurrency
        self.db = Database(url)
        signer, retired = load_keys(self.settings)
        self.audit = AuditLog(self.db, signer, verifiers=retired)
        self.agent = AgentService(self.db, self.settings, SlowModels(self.settings), self.audit)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")} | {
            "TENANTRY_DATABASE_URL": self.settings.database_url,
            "TENANTRY_DATA_DIR": str(self.settings.data_dir),
            "TENANTRY_MODEL": "sandbox", "TENANTRY_EMBEDDER": "hashing",
            "TENANTRY_JOB_KEY": JOB_KEY, "TENANTRY_WORKER_METRICS_PORT": "0",
            "TENANTRY_WORKER_CONCURRENCY": str(self.concurrency),
        }
        self.procs.append(subprocess.Popen(  # noqa: S603 - this script, with its own arguments
            [sys.executable, __file__, "--worker"], env=env, cwd=Path(__file__).parents[1]))

    async def workers_ready(self, count: int) -> None:
        for _ in range(600):
            live = await self.db.run(lambda c: c.execute(text(
                "SELECT count(*) FROM procrastinate_workers")).scalar())
            if int(live or 0) >= count:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("workers did not start")

    def stop_workers(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(30)
        self.procs.clear()

    async def queue(self, jobs: JobQueue, tenant_id: str) -> str:
        grant = await self.agent.open(tenant_id=tenant_id, principal_id="bench")
        await Queued(self.agent, jobs).queue(grant, "what changed?", conversation_id=None)
        return grant.ctx.run_id

    async def queue_many(self, jobs: JobQueue, tenants: list[str]) -> list[str]:
        """Queue one run per entry of ``tenants``, 16 at a time (as many web requests)."""
        gate = asyncio.Semaphore(16)

        async def one(tenant_id: str) -> str:
            async with gate:
                return await self.queue(jobs, tenant_id)

        return list(await asyncio.gather(*(one(t) for t in tenants)))

    async def span(self, run_ids: list[str]) -> float:
        """Seconds from the first run's start to the last run's end (database clocks)."""
        value = await self.db.run(lambda c: c.execute(text(
            "SELECT EXTRACT(EPOCH FROM max(r.updated_at) - min(e.time::timestamptz)) "
            "FROM runs r JOIN audit_events e ON e.run_id = r.id AND e.tenant_id = r.tenant_id "
            "AND e.event = 'run.started' WHERE r.id = ANY(:ids)"), {"ids": run_ids}).scalar())
        assert value is not None, "no run of the benchmark finished"
        return float(value)

    async def wait_done(self, run_ids: list[str]) -> float:
        """Until every run has completed; the monotonic time then."""
        wanted = list(run_ids)
        while True:
            done = await self.db.run(lambda c: c.execute(text(
                "SELECT count(*) FROM runs WHERE id = ANY(:ids) AND status = 'completed'"),
                {"ids": wanted}).scalar())
            if int(done or 0) == len(wanted):
                return time.monotonic()
            await asyncio.sleep(0.05)

    async def waits(self, run_ids: list[str]) -> list[float]:
        """Seconds from each run's queuing to its start."""
        rows = await self.db.run(lambda c: list(c.execute(text(
            "SELECT r.created_at, e.time FROM runs r JOIN audit_events e "
            "ON e.run_id = r.id AND e.tenant_id = r.tenant_id AND e.event = 'run.started' "
            "WHERE r.id = ANY(:ids)"), {"ids": run_ids})))
        return [(datetime.fromisoformat(row.time.replace("Z", "+00:00"))
                 - row.created_at).total_seconds() for row in rows]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def throughput(bench: Bench, jobs: JobQueue, workers: int, runs: int) -> float:
    """Runs per second through ``workers`` processes, the runs queued before they start."""
    ids = await bench.queue_many(jobs, [f"t{n % 20:02d}" for n in range(runs)])
    for _ in range(workers):
        bench.start_worker()
    await bench.wait_done(ids)
    bench.stop_workers()
    return runs / await bench.span(ids)


async def main(server_url: str, runs: int, rate: float, seconds: float,
               concurrency: int) -> int:
    url = create_database(server_url)
    try:
        with tempfile.TemporaryDirectory() as data:
            bench = Bench(url, Path(data), concurrency)
            await upgrade(bench.db)
            await install_queue_schema(url)
            await bench.db.run(create_plan, PLAN)
            for n in range(100):
                await bench.db.run(create_tenant, tenant_id=f"t{n:02d}", name=f"T{n}",
                                   plan_id=PLAN.id)
            async with JobQueue(url, bench.settings.job_key, runs_per_tenant=4) as jobs:
                print(f"Runs through worker processes (model answers in {MODEL_S:.0f} s, "
                      f"worker concurrency {concurrency}); load average {os.getloadavg()}")
                one = await throughput(bench, jobs, 1, runs)
                two = await throughput(bench, jobs, 2, runs)
                ideal = concurrency / MODEL_S
                print(f"  throughput  1 worker : {one:6.2f} runs/s  ({runs} runs, 20 tenants; "
                      f"{ideal:g}/s if runs cost nothing but the model)")
                print(f"  throughput  2 workers: {two:6.2f} runs/s  ({two / one:.2f}x one; "
                      f"target >= {TARGET_SPEEDUP}x: "
                      f"{'met' if two / one >= TARGET_SPEEDUP else 'NOT met'})")

                for _ in range(2):
                    bench.start_worker()
                await bench.workers_ready(2)
                await asyncio.sleep(1)
                steady: list[str] = []
                for n in range(int(rate * seconds)):
                    steady.append(await bench.queue(jobs, f"t{n % 20:02d}"))
                    await asyncio.sleep(1 / rate)
                await bench.wait_done(steady)
                waits = await bench.waits(steady)
                print(f"  queue latency, {rate:g} runs/s for {seconds:g} s, 2 workers: "
                      f"p50 {pct(waits, 0.5) * 1000:.0f} ms, p99 {pct(waits, 0.99) * 1000:.0f} ms")

                started = time.monotonic()
                burst = await bench.queue_many(jobs, [f"t{n:02d}" for n in range(100)])
                finished = await bench.wait_done(burst)
                waits = await bench.waits(burst)
                print(f"  100 tenants at once, 2 workers: all done in "
                      f"{finished - started:.1f} s; queued-to-started p50 "
                      f"{pct(waits, 0.5) * 1000:.0f} ms, p99 {pct(waits, 0.99) * 1000:.0f} ms, "
                      f"median {statistics.median(waits):.2f} s")
                bench.stop_workers()
            print(f"  load average after: {os.getloadavg()}")
            await bench.db.dispose()
    finally:
        with suppress(Exception):
            drop_database(server_url, url)
    return 0


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main()
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True,
                        help="a PostgreSQL server (a database is created and dropped on it)")
    parser.add_argument("--runs", type=int, default=160)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    configure("WARNING")
    raise SystemExit(asyncio.run(main(args.database_url, args.runs, args.rate, args.seconds,
                                      args.concurrency)))
