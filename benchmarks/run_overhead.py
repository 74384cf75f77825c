"""What the tenancy layer adds to each agent step, on SQLite and on PostgreSQL.

A step is one model request plus one tool call. Both sides run the same scripted
``FunctionModel`` (``--steps`` tool calls, then an answer) and the same tool body, so
the only difference is Tenantry's layer: the run record, the budget reserve and
settle in the monthly ledger around every model request and tool call, the effect
ledger, the checkpoint after every model response, and what came with them since
(the per-run authoriser and the audit events of the run and of every tool call).

- baseline: a plain ``pydantic_ai.Agent`` with a plain tool;
- tenancy: ``AgentService.open`` plus ``AgentService.start`` on a migrated database.

Runs alternate between the two sides after a warm-up, so drift in the machine hits
both alike; the medians of ``run time / steps`` are compared against the targets.

Usage::

    .venv/bin/python benchmarks/run_overhead.py [--database-url postgresql+psycopg://...]

PostgreSQL is measured when ``--database-url`` or ``TENANTRY_TEST_DATABASE_URL`` names a
server: the script creates a scratch database there and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from figures import scratch_database
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import event

from core.agent import AgentService
from core.audit.keys import load_keys
from core.audit.log import AuditLog
from core.authz import grant
from core.context import TenantContext
from core.db.engine import Database
from core.db.migrate import upgrade
from core.logs import configure
from core.models import ModelFactory
from core.settings import Settings
from core.tenants import Plan, create_plan, create_tenant
from core.tools import CapabilityRegistry, ToolBinding

PG_ENV = "TENANTRY_TEST_DATABASE_URL"
COMMITS = "(commit)"
TARGET_MS = {"sqlite": 5.0, "postgresql": 10.0}
"""Most milliseconds the tenancy layer may add to one step, per database."""
TOOL = "counter__bump"
TENANT = "bench"
PRINCIPAL = "bench-user"
MODEL_ID = "sandbox"
"""A priced model id (budgets need a price); ``FunctionModels`` serves the script under it."""


def scripted(steps: int) -> Callable[[list[ModelMessage], AgentInfo], ModelResponse]:
    """A model that calls the tool ``steps`` times, then answers: ``steps`` steps per run."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        if turn < steps:
            return ModelResponse(
                parts=[ToolCallPart(TOOL, {"by": 1}, tool_call_id=f"call-{turn}")]
            )
        return ModelResponse(parts=[TextPart(f"bumped {steps} times")])

    return respond


class Counter:
    """The tool body both sides run: one in-memory increment."""

    def __init__(self) -> None:
        self.value = 0

    async def bump(self, by: int) -> int:
        """Bump the counter by ``by`` and return the new value."""
        self.value += by
        return self.value


@dataclass
class CounterCapability:
    """The counter as a Tenantry capability (``counter.bump``), free of charge."""

    counter: Counter
    name: str = "counter.bump"
    description: str = "Bump the counter by `by` and return the new value."

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        """The same function for every run: the benchmark measures the wrapper, not the tool."""
        return ToolBinding(capability=self.name, description=self.description, function=self.bump)

    async def bump(self, ctx: RunContext[TenantContext], by: int) -> int:
        """Bump the counter by ``by`` and return the new value."""
        return await self.counter.bump(by)


class FunctionModels(ModelFactory):
    """Serves the scripted ``FunctionModel`` under the benchmark's model id."""

    def __init__(self, settings: Settings, steps: int) -> None:
        super().__init__(settings)
        self.steps = steps

    def check(self, model_id: str) -> str:
        """Every id is accepted: no provider is involved."""
        return model_id

    def get(self, model_id: str) -> Model:
        """A fresh scripted model, as the production factory builds one per run."""
        return FunctionModel(scripted(self.steps), model_name=model_id)


def bench_plan(steps: int) -> Plan:
    """Ceilings far above what the benchmark spends, so no run halts."""
    return Plan(
        id="bench",
        monthly_tokens=10**15,
        monthly_cost_microcents=10**18,
        monthly_tool_calls=10**12,
        run_tokens=10**9,
        run_tool_calls=steps + 1,
        run_walltime_ms=600_000,
        run_cost_microcents=10**15,
        capabilities=frozenset({"counter.bump"}),
    )


Runner = Callable[[], Awaitable[None]]


def baseline_runner(steps: int) -> Runner:
    """The same loop with nothing around it: plain pydantic-ai, plain tool."""
    counter = Counter()
    agent: Agent[None, str] = Agent(
        FunctionModel(scripted(steps), model_name=MODEL_ID),
        output_type=str,
        tools=[Tool(counter.bump, takes_ctx=False, name=TOOL)],
    )

    async def run() -> None:
        result = await agent.run("bump it")
        assert result.output == f"bumped {steps} times", result.output

    return run


def tenancy_runner(db: Database, settings: Settings, steps: int) -> Runner:
    """One full Tenantry run: context and authoriser from the database, then the loop."""
    service = AgentService(
        db,
        settings,
        FunctionModels(settings, steps),
        AuditLog(db, load_keys(settings)[0]),
        CapabilityRegistry([CounterCapability(Counter())]),
    )

    async def run() -> None:
        run_grant = await service.open(tenant_id=TENANT, principal_id=PRINCIPAL)
        outcome = await service.start(run_grant, "bump it", model=MODEL_ID)
        assert outcome.status == "completed", outcome
        assert outcome.usage.tool_calls == steps, outcome.usage

    return run


@dataclass
class Timings:
    """Milliseconds per step of every timed run, per side."""

    baseline: list[float] = field(default_factory=list)
    tenancy: list[float] = field(default_factory=list)


async def measure(
    baseline: Runner, tenancy: Runner, *, steps: int, runs: int, warmup: int
) -> Timings:
    """Warm both sides up, then alternate timed runs of each."""
    for _ in range(warmup):
        await baseline()
        await tenancy()
    timings = Timings()
    for _ in range(runs):
        for runner, into in ((baseline, timings.baseline), (tenancy, timings.tenancy)):
            started = time.perf_counter()
            await runner()
            into.append((time.perf_counter() - started) * 1000 / steps)
    return timings


async def prepare(db: Database, steps: int) -> None:
    """Migrate the scratch database and put the benchmark tenant on its plan."""
    await upgrade(db)
    plan = bench_plan(steps)
    await db.run(create_plan, plan)
    await db.run(create_tenant, tenant_id=TENANT, name="Benchmark", plan_id=plan.id)
    await db.run(grant, TENANT, PRINCIPAL, "member")


@asynccontextmanager
async def sqlite_database() -> AsyncIterator[str]:
    """A SQLite file in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile: the spread shows how noisy a run was."""
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


@dataclass(frozen=True)
class Result:
    """The medians of one database's runs and what they mean against its target."""

    database: str
    baseline_ms: float
    tenancy_ms: float
    target_ms: float
    baseline_iqr: tuple[float, float]
    tenancy_iqr: tuple[float, float]

    @classmethod
    def of(cls, database: str, timings: Timings) -> Result:
        """Summarise one database's timings."""
        b1, b2, b3 = quartiles(timings.baseline)
        t1, t2, t3 = quartiles(timings.tenancy)
        return cls(database, b2, t2, TARGET_MS[database], (b1, b3), (t1, t3))

    @property
    def added_ms(self) -> float:
        """Milliseconds the tenancy layer adds to one step."""
        return self.tenancy_ms - self.baseline_ms

    @property
    def ratio(self) -> float:
        """How many times slower a step is with the tenancy layer."""
        return self.tenancy_ms / self.baseline_ms

    @property
    def verdict(self) -> str:
        """``PASS`` when the added time is within the target."""
        return "PASS" if self.added_ms <= self.target_ms else "MISS"


async def bench_database(
    kind: str, url: str, args: argparse.Namespace, data_dir: Path
) -> Result:
    """Measure both sides against one database; ``data_dir`` holds the audit signing key."""
    db = Database(url)
    try:
        await prepare(db, args.steps)
        settings = Settings(
            database_url=url, model=MODEL_ID, log_level="INFO", data_dir=data_dir
        )
        baseline = baseline_runner(args.steps)
        tenancy = tenancy_runner(db, settings, args.steps)
        timings = await measure(
            baseline, tenancy, steps=args.steps, runs=args.runs, warmup=args.warmup
        )
        if args.statements:
            await count_statements(kind, db, tenancy, 3, args.steps)
    finally:
        await db.dispose()
    return Result.of(kind, timings)


def statement_kind(sql: str) -> str:
    """``UPDATE monthly_usage``, ``SELECT usage_ledger``...: what a statement does to what."""
    words = sql.split()
    verb = words[0].upper() if words else "?"
    if verb == "SELECT" and "FROM" in (w.upper() for w in words):
        upper = [w.upper() for w in words]
        return f"SELECT {words[upper.index('FROM') + 1]}"
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return f"{verb} {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    return " ".join(words[:2])


async def count_statements(kind: str, db: Database, tenancy: Runner, runs: int,
                           steps: int) -> None:
    """Print the SQL a tenancy step costs: statements and commits per step, by kind."""
    kinds: Tally[str] = Tally()

    def on_statement(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        kinds[statement_kind(statement)] += 1

    def on_commit(conn: Any) -> None:
        kinds[COMMITS] += 1

    event.listen(db.sync_engine, "before_cursor_execute", on_statement)
    event.listen(db.sync_engine, "commit", on_commit)
    try:
        for _ in range(runs):
            await tenancy()
    finally:
        event.remove(db.sync_engine, "before_cursor_execute", on_statement)
        event.remove(db.sync_engine, "commit", on_commit)
    total = runs * steps
    sent = sum(n for k, n in kinds.items() if k != COMMITS)
    print(f"\n{kind}: {sent / total:.2f} statements, {kinds[COMMITS] / total:.2f}"
          f" commits per step (run-level work spread over its steps)")
    for name, n in kinds.most_common():
        print(f"  {n / total:6.2f}  {name}")


def report(results: list[Result], args: argparse.Namespace) -> None:
    """The table the docs quote."""
    print(
        f"\n{args.steps} steps per run (model request + tool call), {args.runs} timed runs per"
        f" side after {args.warmup} warm-up runs; medians in ms per step"
    )
    header = (
        f"{'database':<11}{'baseline':>10}{'tenancy':>10}{'added':>9}{'ratio':>8}"
        f"{'target':>9}  verdict   {'baseline IQR':>13}  {'tenancy IQR':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.database:<11}{r.baseline_ms:>10.3f}{r.tenancy_ms:>10.3f}{r.added_ms:>9.3f}"
            f"{r.ratio:>7.1f}x{'<= ' + format(r.target_ms, 'g'):>9}  {r.verdict:<7}"
            f"{_span(r.baseline_iqr):>15}  {_span(r.tenancy_iqr):>13}"
        )


def _span(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f}-{pair[1]:.2f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are what the docs report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(PG_ENV),
        help=f"a PostgreSQL server to measure on (default: ${PG_ENV}); omitted: SQLite only",
    )
    parser.add_argument("--steps", type=int, default=20, help="tool calls per run")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per side first")
    parser.add_argument(
        "--statements", action="store_true",
        help="also count the SQL statements and commits of a tenancy step, by kind",
    )
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the exit status is 1 when a target is missed."""
    args = parse_args(argv)
    configure("INFO")  # the deployment default: debug lines are filtered, as in production
    logging.getLogger("casbin").setLevel(logging.WARNING)  # it prints its model at INFO
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-data-") as data:
        async with sqlite_database() as url:
            results.append(await bench_database("sqlite", url, args, Path(data)))
        if args.database_url:
            with scratch_database(args.database_url) as url:
                results.append(await bench_database("postgresql", url, args, Path(data)))
        else:
            print(f"PostgreSQL skipped: pass --database-url or set {PG_ENV}", file=sys.stderr)
    report(results, args)
    return 0 if all(r.verdict == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
