"""The aiohttp application of ``tenantry serve``: transports mounted on one server.

The app owns the runtime and the executor through a cleanup context, so clients are
created at startup, never at import, and in-flight runs drain at shutdown. Runs left
unfinished by a crash are resumed at the next start, and ``upkeep`` runs beside the
transports: it signs audit tails, resumes runs of processes that died and applies
retention; the digest clock (``bots.clock``) fires schedules into the executor. A
middleware keeps the executor's gate shut while requests are in flight, so runs start
between bursts of requests rather than delaying their acknowledgements.

On PostgreSQL (``runs_in``: ``auto`` or ``workers``) the app only accepts: the runs of
accepted requests, and the unfinished runs it finds, are queued for ``tenantry
worker`` (``bots.runner.Queued``), and the app runs no clock (``tenantry clock`` queues
the firings). ``/metrics`` and ``/healthz`` are for operators.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from aiohttp import web
from aiohttp.typedefs import Handler

from bots.clock import DigestClock, Fire
from bots.digests import deliver_digest, fire_digest
from bots.executor import Executor, QuietGate
from bots.jobs.claims import ClaimSigner
from bots.jobs.queue import JobQueue
from bots.mcp.serving import McpServer, mcp_served
from bots.mcp.settings import McpSettings
from bots.metrics import health, metrics_response
from bots.runner import RUN_JOB, InProcess, Queued
from bots.runtime import Runtime, open_runtime
from bots.settings import ServerSettings
from bots.slack.settings import SlackSettings
from bots.teams.settings import TeamsSettings
from core.digests.schedule import iso
from core.errors import ConfigurationError, TenantryError
from core.logs import log
from core.retention import sweep
from core.runs import unfinished_runs
from core.settings import Settings
from core.upkeep import sign_unsigned

RUNTIME = web.AppKey("runtime", Runtime)
EXECUTOR = web.AppKey("executor", Executor)
CLOCK = web.AppKey("clock", DigestClock)
MCP = web.AppKey("mcp", McpServer)

Mount = Callable[[web.Application, Runtime, Executor], Awaitable[None]]


async def healthz(request: web.Request) -> web.Response:
    """Whether the database (and the queue) answer, and a glance at the executor: jobs
    waiting for admission, and running. 503 when the database or the queue does not."""
    executor = request.app[EXECUTOR]
    ok, report = await health(request.app[RUNTIME])
    return web.json_response({"ok": ok, **report, "runs_in_flight": executor.in_flight,
                              "runs_queued": executor.queued,
                              "runs_running": executor.running},
                             status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text format (``bots.metrics``)."""
    return await metrics_response(request.app[RUNTIME])


TRANSPORT_ROUTES = {"/slack/events": "slack", "/api/messages": "teams"}


@web.middleware
async def serving(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keep the executor's gate shut while the request is in flight; count the chat
    platforms' requests answered."""
    transport = TRANSPORT_ROUTES.get(request.path)
    started = time.perf_counter()
    with request.app[EXECUTOR].gate.serving():
        response = await handler(request)
    if transport is not None:
        request.app[RUNTIME].metrics.acknowledged(transport, response.status,
                                                  time.perf_counter() - started)
    return response


async def resume_unfinished(runtime: Runtime, executor: Executor) -> int:
    """Hand every unfinished run back to the executor, or to the workers; the runtime's
    deliverers render them.

    ``queued``: acknowledged but parked at shutdown before it started (or, with the
    workers, queued by a process that died before its job was); ``running``:
    interrupted by a crash or cancelled at shutdown. A run another process holds (its
    lease) is left to it; ``resume`` takes the lease, so of two processes restarting
    at once one executes each run. With the workers, a run whose job is still waiting
    is not queued twice (the job's queueing lock).
    """
    count = 0
    for record in await runtime.db.run(unfinished_runs):
        if runtime.jobs is not None:
            if await runtime.jobs.enqueue(RUN_JOB, record.tenant_id, run_id=record.id):
                count += 1
            continue

        async def job(record_id: str = record.id, tenant_id: str = record.tenant_id) -> None:
            try:
                # As it was asked: the same principal, vouched roles and correlation id.
                grant = await runtime.agent.reopen(tenant_id, record_id)
                async with executor.slot(tenant_id):
                    outcome = await runtime.agent.resume(grant)
                for deliver in runtime.deliverers:
                    await deliver(outcome)
            except TenantryError as exc:
                log.warning("unfinished run not resumed", run_id=record_id, error=str(exc))

        if executor.submit(record.id, job):
            count += 1
    return count


async def upkeep(runtime: Runtime, executor: Executor, server: ServerSettings) -> None:
    """Every ``upkeep_interval_s``: sign unsigned audit tails and resume runs whose
    lease expired; every ``retention_interval_s``: apply retention. Runs until cancelled.

    A failing step is logged and tried again next time; it never stops the others.
    """
    swept_at = time.monotonic()
    while True:
        await asyncio.sleep(server.upkeep_interval_s)
        due = time.monotonic() - swept_at >= server.retention_interval_s
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("resume", lambda: resume_unfinished(runtime, executor)),
            ("sign", lambda: sign_unsigned(runtime.audit)),
        ]
        if due:
            swept_at = time.monotonic()
            steps.append(("retention", lambda: sweep(runtime.db, runtime.audit)))
        for name, step in steps:
            try:
                await step()
            except Exception:
                log.exception("upkeep step failed", step=name)


def submit_firings(runtime: Runtime, executor: Executor) -> Fire:
    """The clock's callback in ``tenantry serve``: each firing becomes an executor job,
    keyed by the firing, run in its tenant's slot."""
    async def fire(tenant_id: str, digest_id: str, fire_time: datetime) -> None:
        async def job() -> None:
            async with executor.slot(tenant_id):
                await fire_digest(runtime, tenant_id, digest_id, fire_time)

        executor.submit(f"digest:{digest_id}:{iso(fire_time)}", job)

    return fire


@asynccontextmanager
async def in_process_clock(runtime: Runtime, executor: Executor, server: ServerSettings,
                           wanted: bool) -> AsyncIterator[DigestClock | None]:
    """The digest clock of ``tenantry serve`` on the embedded default; with the workers,
    ``tenantry clock`` is the deployment's one clock and the app runs none."""
    if not wanted:
        log.info("digests fire from tenantry clock: this process runs no clock")
        yield None
        return
    async with DigestClock(runtime.db, submit_firings(runtime, executor),
                           grace=timedelta(seconds=runtime.settings.digest_grace_s),
                           reload_s=server.digest_reload_s) as clock:
        yield clock


def transports(server: ServerSettings, slack_settings: SlackSettings,
               teams_settings: TeamsSettings, app: web.Application) -> list[Mount]:
    """Add the routes of every configured transport, and the HTTP API's (always on);
    return their startup halves.

    Raises:
        ConfigurationError: a transport is half configured (names what is missing).
    """
    from bots import api
    from bots.slack import app as slack
    from bots.teams import app as teams

    api.add_routes(app)
    mounts: list[Mount] = []
    if slack_settings.enabled():
        slack.add_routes(app)
        mounts.append(slack.mounted(slack_settings, server.public_url))
        log.info("slack enabled", public_url=server.public_url)
    else:
        log.warning("slack disabled: set TENANTRY_SLACK_SIGNING_SECRET, "
                    "TENANTRY_SLACK_CLIENT_ID and TENANTRY_SLACK_CLIENT_SECRET to enable it")
    if teams_settings.enabled(listening_on=server.host):
        teams.add_routes(app)
        mounts.append(teams.mounted(teams_settings))
        log.info("teams enabled", app_id=teams_settings.app_id)
    else:
        log.warning("teams disabled: set TENANTRY_TEAMS_APP_ID, TENANTRY_TEAMS_APP_PASSWORD "
                    "and TENANTRY_TEAMS_APP_TENANT_ID to enable it")
    return mounts


def create_app(settings: Settings, server: ServerSettings | None = None,
               slack: SlackSettings | None = None, teams: TeamsSettings | None = None, *,
               mounts: list[Mount] | None = None,
               mcp: McpSettings | None = None) -> web.Application:
    """The web application with every configured transport (or exactly ``mounts``).

    ``server``, ``slack``, ``teams`` and ``mcp`` default to what the environment (or
    ``.env``) sets; given ``mounts``, MCP is served only if ``mcp`` is given too.
    """
    server = server or ServerSettings()
    workers = on_workers(settings, server)
    app = web.Application(client_max_size=1024 * 1024, middlewares=[serving])
    if mounts is None:
        mounts = transports(server, slack or SlackSettings(), teams or TeamsSettings(), app)
        mcp = mcp or McpSettings()

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        gate = QuietGate(max_delay_s=server.run_admission_max_delay_ms / 1000)
        async with (open_runtime(settings) as runtime,
                    open_queue(settings, server.runs_per_tenant, workers) as jobs,
                    Executor(per_tenant=server.runs_per_tenant,
                             per_process=server.runs_per_process, gate=gate) as executor):
            app[RUNTIME] = runtime
            app[EXECUTOR] = executor
            runtime.jobs = jobs
            runtime.runner = (InProcess(runtime.agent, executor) if jobs is None
                              else Queued(runtime.agent, jobs))
            try:
                runtime.models.check(settings.model)
            except ConfigurationError as exc:
                log.error("every run will fail until the model is configured", error=str(exc))
            for mount in mounts:
                await mount(app, runtime, executor)
            runtime.deliverers.append(functools.partial(deliver_digest, runtime))
            resumed = await resume_unfinished(runtime, executor)
            if resumed:
                log.info("resuming unfinished runs", count=resumed)
            async with (in_process_clock(runtime, executor, server, jobs is None) as clock,
                        mcp_served(runtime, executor, mcp) as mcp_server):
                if clock is not None:
                    app[CLOCK] = clock
                if mcp_server is not None:
                    app[MCP] = mcp_server
                upkeeping = asyncio.create_task(upkeep(runtime, executor, server),
                                                name="tenantry-upkeep")
                # What startup loaded lives as long as the app: keep it out of the
                # collector's full passes, which stop the event loop, acknowledgements
                # included, for a time that grows with everything tracked (200 ms,
                # docs/benchmarks.md).
                gc.freeze()
                yield
                upkeeping.cancel()
                await asyncio.gather(upkeeping, return_exceptions=True)
        gc.unfreeze()

    app.cleanup_ctx.append(lifespan)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def on_workers(settings: Settings, server: ServerSettings) -> bool:
    """Whether the app queues its runs for the workers rather than executing them.

    Raises:
        ConfigurationError: workers asked for on SQLite, or without ``TENANTRY_JOB_KEY``.
    """
    workers = server.runs_in == "workers" or (server.runs_in == "auto"
                                              and not settings.is_sqlite)
    if workers and settings.is_sqlite:
        raise ConfigurationError("runs_in=workers needs PostgreSQL: the queue lives in the "
                                 "app database")
    if workers:
        ClaimSigner(settings.job_key)  # refuses to start without the key, naming it
    return workers


@asynccontextmanager
async def open_queue(settings: Settings, runs_per_tenant: int,
                     wanted: bool = True) -> AsyncIterator[JobQueue | None]:
    """The deployment's job queue if ``wanted`` (else ``None``), open for as long as
    the context lasts."""
    if not wanted:
        yield None
        return
    async with JobQueue(settings.database_url, settings.job_key,
                        runs_per_tenant=runs_per_tenant) as queue:
        yield queue
