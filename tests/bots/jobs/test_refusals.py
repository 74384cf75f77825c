"""A worker refuses, and audits, a job whose claim does not match what the database holds.

The jobs are written to the real queue and executed by procrastinate's worker in this
process (``wait=False``: until the queue is empty).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bots.jobs import import_kinds
from bots.jobs.claims import Claim
from bots.jobs.queue import QUEUE, TASK, JobQueue
from bots.runtime import Runtime, open_runtime
from core.audit.events import JOB_REFUSED
from core.runs import get_run
from core.settings import Settings
from core.tenants import set_status
from tests.conftest import JOB_KEY
from tests.support.databases import PostgresTemplates
from tests.support.tenancy import plan, tenant_on

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_settings(postgres_templates: PostgresTemplates | None,
                tmp_path: Path) -> Iterator[Settings]:
    if postgres_templates is None:
        pytest.skip("the queue needs PostgreSQL: set TENANTRY_TEST_DATABASE_URL")
    url = postgres_templates.fresh()
    yield Settings(database_url=url, data_dir=tmp_path / "data", model="sandbox",
                   embedder="hashing", job_key=SecretStr(JOB_KEY))
    postgres_templates.drop(url)


@pytest.fixture
async def worker(pg_settings: Settings) -> AsyncIterator[tuple[Runtime, JobQueue]]:
    import_kinds()
    async with (open_runtime(pg_settings) as runtime,
                JobQueue(pg_settings.database_url, pg_settings.job_key,
                         runs_per_tenant=2) as queue):
        runtime.jobs = queue
        queue.serve(runtime)
        yield runtime, queue


async def queued_run(runtime: Runtime, tenant_id: str) -> str:
    grant = await runtime.agent.open(tenant_id=tenant_id, principal_id="ada",
                                     extra_roles={"member"})
    await runtime.agent.queue(grant, "what is the secret plan?", conversation_id=None)
    return grant.ctx.run_id


async def refusals(runtime: Runtime, tenant_id: str) -> list[str]:
    found = await runtime.audit.recent(tenant_id, 50, events=[JOB_REFUSED])
    return sorted(str(event.fields["reason"]) for event in found)


async def test_forged_altered_and_mismatched_claims_are_refused_and_audited(
        worker: tuple[Runtime, JobQueue]) -> None:
    runtime, queue = worker
    for tenant in ("acme", "globex", "initech"):
        await tenant_on(runtime.db, tenant, plan())
    run_id = await queued_run(runtime, "acme")
    suspended_run = await queued_run(runtime, "initech")
    await runtime.db.run(set_status, "initech", "suspended")
    signer = queue.signer
    good = signer.payload(Claim.of("run", "acme", {"run_id": run_id}))
    payloads = [
        good | {"mac": "0" * 64},                                          # forged
        good | {"tenant_id": "globex"},                                    # altered
        signer.payload(Claim.of("run", "globex", {"run_id": run_id})),     # not globex's run
        signer.payload(Claim.of("run", "initech", {"run_id": suspended_run})),
        signer.payload(Claim.of("run", "nobody", {"run_id": run_id})),     # no such tenant
        signer.payload(Claim.of("mystery", "acme", {"run_id": run_id})),   # no such kind
    ]
    for payload in payloads:
        await queue.app.configure_task(TASK, queue=QUEUE).defer_async(**payload)

    await queue.app.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False,
                                     listen_notify=False)

    assert await refusals(runtime, "acme") == ["bad_signature", "unknown_kind"]
    assert await refusals(runtime, "globex") == ["bad_signature", "unknown_run"]
    assert await refusals(runtime, "initech") == ["tenant_suspended"]
    for tenant, run in (("acme", run_id), ("initech", suspended_run)):
        record = await runtime.db.run(get_run, tenant, run)
        assert (record.status, record.attempts) == ("queued", 1), "nothing was executed"
    [event, *_] = await runtime.audit.recent("acme", 50, events=[JOB_REFUSED])
    assert "secret" not in str(event.fields) and set(event.fields) == {
        "reason", "job_id", "kind", "payload_digest"}


async def test_a_signed_job_runs_its_run_once_and_a_second_copy_only_finds_it_done(
        worker: tuple[Runtime, JobQueue]) -> None:
    runtime, queue = worker
    await tenant_on(runtime.db, "acme", plan())
    run_id = await queued_run(runtime, "acme")
    assert await queue.enqueue("run", "acme", run_id=run_id) is not None
    assert await queue.enqueue("run", "acme", run_id=run_id) is None, "already waiting"

    await queue.app.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False,
                                     listen_notify=False)
    done = await runtime.db.run(get_run, "acme", run_id)
    assert done.status == "completed" and done.detail.get("delivered") is True

    assert await queue.enqueue("run", "acme", run_id=run_id) is not None
    await queue.app.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False,
                                     listen_notify=False)
    again = await runtime.db.run(get_run, "acme", run_id)
    assert (again.status, again.attempts) == ("completed", 1)
    assert await refusals(runtime, "acme") == []
