"""``tenantry worker``: executes the queue's jobs (PostgreSQL), beside any number of others.

One process runs procrastinate's asyncio worker with ``concurrency`` jobs at once, its
own runtime, and the delivery half of every configured transport (a run's outcome
goes to the place it was asked in; no HTTP routes are served but ``/metrics`` and
``/healthz``). Each job is checked before it executes (``bots.jobs.queue``).

Stopping: SIGTERM (or SIGINT) stops fetching jobs and gives the running ones
``shutdown_grace_s``; a run still going then is stopped at its last checkpoint, its
lease released, and its job put back on the queue for another worker.

Dying: a worker killed outright (kill -9, a lost machine) stops its heartbeat. Every
``sweep_s``, each worker looks for jobs whose worker has been silent for
``stalled_after_s`` (procrastinate's stalled jobs): it breaks the leases that worker
held on runs, then puts the jobs back on the queue. The retried job resumes its run
from the checkpoint: settled model calls and recorded tool effects are replayed, not
repeated, and a run already finished is only delivered, once.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bots.jobs import import_kinds
from bots.jobs.claims import ClaimSigner
from bots.jobs.queue import LEASE_PREFIX, QUEUE, JobQueue
from bots.metrics import health, metrics_response
from bots.runtime import Runtime, open_runtime
from bots.settings import ServerSettings, WorkerSettings
from bots.slack.settings import SlackSettings
from bots.teams.settings import TeamsSettings
from core.errors import ConfigurationError
from core.logs import log
from core.runs import break_leases, leases_held
from core.settings import Settings

WORKER_RUNTIME = web.AppKey("runtime", Runtime)


def check_worker(settings: Settings) -> None:
    """Refuse to start a worker where there can be no queue.

    Raises:
        ConfigurationError: SQLite, or no ``TENANTRY_JOB_KEY``.
    """
    if settings.is_sqlite:
        raise ConfigurationError("tenantry worker needs PostgreSQL (TENANTRY_DATABASE_URL): "
                                 "on SQLite, tenantry serve executes the runs itself")
    ClaimSigner(settings.job_key)


def attach_delivery(runtime: Runtime, slack: SlackSettings, teams: TeamsSettings) -> None:
    """Give a process without the transports' routes (a worker, a clock on its own) the
    delivery half of every configured transport: the runtime's deliverers (a run's
    outcome goes where it was asked) and posters (a digest goes to its destination)."""
    from bots.digests import deliver_digest
    from bots.slack import app as slack_app
    from bots.slack.digests import SlackPoster
    from bots.teams import app as teams_app
    from bots.teams.digests import TeamsPoster

    if slack.enabled():
        slack_delivery = slack_app.delivery(runtime, slack)
        runtime.deliverers.append(slack_delivery.deliver)
        runtime.posters["slack"] = SlackPoster(runtime, slack_delivery.clients)
    if teams.enabled():  # a worker takes no Teams requests: anonymous mode only posts
        teams_delivery = teams_app.delivery(runtime, teams)
        runtime.deliverers.append(teams_delivery.deliver)
        runtime.posters["teams"] = TeamsPoster(runtime, teams_delivery)
    if not runtime.posters:
        log.warning("no transport configured: outcomes of runs are recorded, not delivered")
    runtime.deliverers.append(functools.partial(deliver_digest, runtime))


async def sweep_stalled(runtime: Runtime, queue: JobQueue, stalled_after_s: float) -> int:
    """Put the jobs of dead workers back on the queue, after breaking their runs' leases;
    how many jobs were put back."""
    manager = queue.app.job_manager
    stalled = list(await manager.get_stalled_jobs(queue=QUEUE,
                                                  seconds_since_heartbeat=stalled_after_s))
    live = await queue.live_workers(stalled_after_s)
    held = await runtime.db.run(leases_held, LEASE_PREFIX)
    dead = {owner for owner in held if owner.removeprefix(LEASE_PREFIX) not in
            {str(worker_id) for worker_id in live}}
    if dead:
        freed = await runtime.db.run(break_leases, dead)
        log.warning("leases of dead workers broken", owners=sorted(dead), runs=freed)
    retried = 0
    for job in stalled:
        try:
            await manager.retry_job(job)
            retried += 1
        except Exception as exc:  # another worker's sweep was first
            log.info("stalled job not retried", job_id=job.id, error=str(exc)[:160])
    if retried:
        log.warning("stalled jobs retried", count=retried)
    return retried


async def _sweep_forever(runtime: Runtime, queue: JobQueue, worker: WorkerSettings) -> None:
    while True:
        try:
            await sweep_stalled(runtime, queue, worker.stalled_after_s)
        except Exception:
            log.exception("stalled-job sweep failed")
        await asyncio.sleep(worker.sweep_s)


@asynccontextmanager
async def serving_metrics(runtime: Runtime, worker: WorkerSettings) -> AsyncIterator[None]:
    """``/metrics`` and ``/healthz`` of this worker, unless its port is 0."""
    if not worker.metrics_port:
        yield
        return

    async def metrics(request: web.Request) -> web.Response:
        return await metrics_response(request.app[WORKER_RUNTIME])

    async def healthz(request: web.Request) -> web.Response:
        ok, report = await health(request.app[WORKER_RUNTIME])
        return web.json_response({"ok": ok, **report}, status=200 if ok else 503)

    app = web.Application()
    app[WORKER_RUNTIME] = runtime
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, worker.metrics_host, worker.metrics_port).start()
        log.info("worker metrics served", host=worker.metrics_host, port=worker.metrics_port)
        yield
    finally:
        await runner.cleanup()


async def work(settings: Settings, worker: WorkerSettings | None = None,
               server: ServerSettings | None = None, slack: SlackSettings | None = None,
               teams: TeamsSettings | None = None) -> None:
    """Execute jobs until SIGTERM or SIGINT.

    Raises:
        ConfigurationError: see ``check_worker``.
    """
    check_worker(settings)
    worker = worker or WorkerSettings()
    server = server or ServerSettings()
    kinds = import_kinds()
    async with (open_runtime(settings) as runtime,
                JobQueue(settings.database_url, settings.job_key,
                         runs_per_tenant=server.runs_per_tenant,
                         pool_size=worker.concurrency + 4) as queue,
                serving_metrics(runtime, worker)):
        runtime.jobs = queue
        attach_delivery(runtime, slack or SlackSettings(), teams or TeamsSettings())
        queue.serve(runtime)
        log.info("worker started", concurrency=worker.concurrency, kinds=kinds)
        async with asyncio.TaskGroup() as group:
            sweeping = group.create_task(_sweep_forever(runtime, queue, worker),
                                         name="tenantry-sweep")
            try:
                await queue.app.run_worker_async(
                    queues=[QUEUE], name=f"{socket.gethostname()[:40]}:{os.getpid()}",
                    concurrency=worker.concurrency, wait=True, listen_notify=True,
                    fetch_job_polling_interval=worker.poll_s,
                    abort_job_polling_interval=max(worker.poll_s, 5),
                    update_heartbeat_interval=worker.heartbeat_s,
                    stalled_worker_timeout=worker.stalled_after_s,
                    shutdown_graceful_timeout=worker.shutdown_grace_s,
                    delete_jobs="successful", install_signal_handlers=True)
            finally:
                sweeping.cancel()
        log.info("worker stopped")
