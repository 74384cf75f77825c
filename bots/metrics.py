"""What operators scrape: ``/metrics`` in the Prometheus text format, per process.

Counted here as it happens (each process its own, summed by the scraper): run
allocations started and finished by outcome, their duration, the wait of queued runs
from being queued to starting, and the transports' acknowledgements. Read from the
database at each scrape (the same for every process): the queue's depth and its
oldest job's wait, and each tenant's tokens and cost this month. Tenants are a label
only for the ``top_tenants`` that used most tokens this month; the rest are summed as
``other``, so the label set stays bounded however many tenants there are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import text

from core.agent import RunOutcome
from core.context import TenantContext
from core.runs import usage_by_tenant

if TYPE_CHECKING:
    from bots.runtime import Runtime

TOP_TENANTS = 20
OTHER = "other"
DURATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class Metrics:
    """One process's metrics; a ``core.agent.RunObserver`` of its agent service."""

    def __init__(self, *, top_tenants: int = TOP_TENANTS) -> None:
        self.top_tenants = top_tenants
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs_started = Counter("tenantry_runs_started", "Run allocations started here.",
                                    registry=r)
        self.runs_finished = Counter("tenantry_runs_finished",
                                     "Run allocations ended here, by outcome.", ["outcome"],
                                     registry=r)
        self.run_seconds = Histogram("tenantry_run_duration_seconds",
                                     "Walltime of run allocations ended here.",
                                     buckets=DURATION_BUCKETS, registry=r)
        self.queue_wait = Histogram("tenantry_queue_wait_seconds",
                                    "From a run being queued to a worker starting it.",
                                    buckets=WAIT_BUCKETS, registry=r)
        self.acks = Counter("tenantry_acknowledgements",
                            "Requests of the chat platforms answered, by transport and status.",
                            ["transport", "status"], registry=r)
        self.ack_seconds = Histogram("tenantry_acknowledgement_seconds",
                                     "Time to answer a chat platform's request.",
                                     ["transport"], buckets=WAIT_BUCKETS, registry=r)
        self.queue_waiting = Gauge("tenantry_queue_jobs_waiting",
                                   "Jobs on the queue waiting for a worker.", registry=r)
        self.queue_executing = Gauge("tenantry_queue_jobs_executing",
                                     "Jobs on the queue being executed.", registry=r)
        self.queue_oldest = Gauge("tenantry_queue_oldest_wait_seconds",
                                  "How long the oldest waiting job has waited.", registry=r)
        self.tenant_tokens = Gauge("tenantry_tenant_tokens_month",
                                   "Tokens of the tenant's runs created this month (UTC).",
                                   ["tenant"], registry=r)
        self.tenant_cost = Gauge("tenantry_tenant_cost_usd_month",
                                 "Cost of the tenant's runs created this month (UTC), USD.",
                                 ["tenant"], registry=r)

    def started(self, ctx: TenantContext) -> None:
        """``RunObserver``: a run allocation starts."""
        self.runs_started.inc()

    def finished(self, outcome: RunOutcome, seconds: float) -> None:
        """``RunObserver``: a run allocation ended."""
        self.runs_finished.labels(outcome.status).inc()
        self.run_seconds.observe(seconds)

    def acknowledged(self, transport: str, status: int, seconds: float) -> None:
        """A chat platform's request was answered."""
        self.acks.labels(transport, str(status)).inc()
        self.ack_seconds.labels(transport).observe(seconds)

    async def refresh(self, runtime: Runtime) -> None:
        """Read what the database knows: the tenants' month, and the queue if there is one."""
        now = datetime.now(UTC)
        month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        usage = await runtime.db.run(usage_by_tenant, month)
        self.tenant_tokens.clear()
        self.tenant_cost.clear()
        for n, used in enumerate(usage):
            label = used.tenant_id if n < self.top_tenants else OTHER
            self.tenant_tokens.labels(label).inc(used.tokens)
            self.tenant_cost.labels(label).inc(used.cost_microcents / 100 / 1_000_000)
        if runtime.jobs is not None:
            depth = await runtime.jobs.depth()
            self.queue_waiting.set(depth.waiting)
            self.queue_executing.set(depth.executing)
            self.queue_oldest.set(depth.oldest_wait_s)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


async def metrics_response(runtime: Runtime) -> web.Response:
    """``GET /metrics`` of a process whose runtime is ``runtime``."""
    await runtime.metrics.refresh(runtime)
    response = web.Response(body=runtime.metrics.render())
    response.content_type, _, _ = CONTENT_TYPE_LATEST.partition(";")
    response.charset = "utf-8"
    return response


async def health(runtime: Runtime) -> tuple[bool, dict[str, object]]:
    """Whether the database answers, and (with a queue) how the queue stands."""
    report: dict[str, object] = {}
    try:
        await runtime.db.run(lambda conn: conn.execute(text("SELECT 1")).scalar())
        report["database"] = "ok"
    except Exception as exc:
        report["database"] = f"error: {type(exc).__name__}"
    if runtime.jobs is not None:
        try:
            depth = await runtime.jobs.depth()
            report["queue"] = {"waiting": depth.waiting, "executing": depth.executing,
                               "oldest_wait_s": round(depth.oldest_wait_s, 3)}
        except Exception as exc:
            report["queue"] = f"error: {type(exc).__name__}"
    ok = report["database"] == "ok" and not isinstance(report.get("queue"), str)
    return ok, report
