"""``/v1/runs``: start a run as the key's principal, read it, resume it after a halt.

A run is recorded as ``queued`` in the request's own transaction (with its
``Idempotency-Key``, if sent), so the answer (202 and the run id) never waits for the
model, and ``GET`` finds the run at once. It then executes as any accepted run does:
in this process's executor on the embedded default, or on ``tenantry worker`` where
the deployment has the workers (``bots.jobs.runs.finish_run`` either way). A run of
another tenant is not found (404), never forbidden: its existence is not disclosed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bots.api.auth import authenticate
from bots.api.bodies import parse, read_body
from bots.api.idempotency import digest, remember, remembered
from bots.api.models import RunAccepted, RunRequest, RunView, Usage
from bots.api.problems import problem
from bots.jobs.runs import finish_run
from bots.runner import RUN_JOB, queue_resume
from bots.runtime import Runtime
from bots.web import EXECUTOR, RUNTIME
from bots.wording import MODEL_UNAVAILABLE
from core.api_keys import ApiKey
from core.builder import RunGrant
from core.errors import ConfigurationError, Conflict, NotFound, RunRefused
from core.logs import log
from core.runs import (
    SESSION_HEADER,
    SESSION_RULE,
    RunRecord,
    create_run,
    get_run,
    is_session_id,
    session_correlation,
)

TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
"""What ``Idempotency-Key`` and ``X-Tenantry-Session`` may be (the session rule is
``core.runs.is_session_id``, the same pattern)."""


def _header_token(request: web.Request, name: str) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if not TOKEN.match(value):
        raise problem(400, "Bad Request",
                      f"{name} must be 1-100 letters, digits or . _ : -")
    return value


def view(record: RunRecord) -> RunView:
    """A stored run as the API shows it."""
    return RunView(
        id=record.id, status=record.status,
        conversation_id=record.conversation_id, answer=record.answer,
        usage=Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                    tool_calls=record.tool_calls, cost_microcents=record.cost_microcents),
        halt=record.detail.get("halt"), error=record.detail.get("error"),
        created_at=record.created_at.isoformat())


def _record_accepted(conn: Connection, grant: RunGrant, asked: RunRequest, model: str,
                     idempotency: tuple[str, str] | None) -> None:
    if idempotency is not None:
        remember(conn, grant.ctx.tenant_id, idempotency[0], idempotency[1], grant.ctx.run_id,
                 now=datetime.now(UTC))
    create_run(conn, grant.ctx, prompt=asked.prompt, model=model, status="queued",
               conversation_id=asked.conversation_id, granted_roles=grant.extra_roles)


def _replayed(found_digest: str, sent_digest: str, run_id: str) -> web.Response:
    if found_digest != sent_digest:
        raise problem(409, "Conflict", "this Idempotency-Key was used with another request body")
    return web.json_response(RunAccepted(id=run_id, status="accepted").model_dump(), status=202)


async def _dispatch(request: web.Request, runtime: Runtime, tenant_id: str, run_id: str) -> None:
    """Execute the queued run here, or hand it to the workers."""
    if runtime.jobs is not None:
        await runtime.jobs.enqueue(RUN_JOB, tenant_id, run_id=run_id)
        return
    executor = request.config_dict[EXECUTOR]

    async def job() -> None:
        async with executor.slot(tenant_id):
            await finish_run(runtime, tenant_id, run_id)

    # Parked at shutdown, the run stays ``queued``: the next start resumes it.
    executor.submit(run_id, job)


async def start_run(request: web.Request) -> web.Response:
    """``POST /v1/runs``: 202 with the run's id, before it executes."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    idempotency_key = _header_token(request, "Idempotency-Key")
    session = request.headers.get(SESSION_HEADER)
    if session is not None and not is_session_id(session):
        raise problem(400, "Bad Request", f"{SESSION_HEADER} must be {SESSION_RULE}")
    body = await read_body(request)
    asked = parse(RunRequest, body)
    sent = digest(body)
    if idempotency_key is not None:
        found = await runtime.db.run(remembered, key.tenant_id, idempotency_key,
                                     now=datetime.now(UTC))
        if found is not None:
            return _replayed(found.digest, sent, found.run_id)
    try:
        grant = await runtime.agent.open(
            tenant_id=key.tenant_id, principal_id=key.principal_id, principal_kind="service",
            initiator="user",
            correlation_id=None if session is None else session_correlation(session))
    except RunRefused as refused:  # audited by the agent service
        raise problem(403, "Run Refused", f"the run was refused: {refused}") from None
    try:
        model = runtime.models.check(runtime.settings.model)
    except ConfigurationError as exc:  # the deployment's to fix, not the caller's
        log.error("api run refused: the model is not usable", error=str(exc))
        raise problem(503, "Service Unavailable", MODEL_UNAVAILABLE) from None
    try:
        await runtime.db.run(_record_accepted, grant, asked, model,
                             None if idempotency_key is None else (idempotency_key, sent))
    except IntegrityError:  # the same key, sent twice at once: the other one won
        assert idempotency_key is not None
        found = await runtime.db.run(remembered, key.tenant_id, idempotency_key,
                                     now=datetime.now(UTC))
        if found is None:
            raise
        return _replayed(found.digest, sent, found.run_id)
    await _dispatch(request, runtime, key.tenant_id, grant.ctx.run_id)
    log.info("api run accepted", run_id=grant.ctx.run_id, tenant_id=key.tenant_id)
    return web.json_response(RunAccepted(id=grant.ctx.run_id, status="queued").model_dump(),
                             status=202)


async def own_run(runtime: Runtime, key: ApiKey, run_id: str) -> RunRecord:
    """The key's tenant's run ``run_id``; 404 for any other (another tenant's too)."""
    if len(run_id) > 36 or "\x00" in run_id:  # never a run id; PostgreSQL refuses NUL
        raise problem(404, "Not Found", "no such run")
    try:
        return await runtime.db.run(get_run, key.tenant_id, run_id)
    except NotFound:
        raise problem(404, "Not Found", "no such run") from None


async def read_run(request: web.Request) -> web.Response:
    """``GET /v1/runs/{id}``."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    record = await own_run(runtime, key, request.match_info["run_id"])
    return web.json_response(view(record).model_dump())


async def resume_run(request: web.Request) -> web.Response:
    """``POST /v1/runs/{id}/resume``: a halted run, by its own principal only, as it was
    asked (its principal, roles and correlation), with the tenant's budget of now.

    Where the deployment has workers, the run is queued again for them (202,
    ``queued``), as a new run is; otherwise this process executes it (202, ``running``).
    """
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    record = await own_run(runtime, key, request.match_info["run_id"])
    if record.principal_id != key.principal_id:
        raise problem(403, "Forbidden", "only the run's own principal may resume it")
    if record.status != "halted":
        raise problem(409, "Conflict", f"the run is {record.status}, not halted")
    try:
        grant = await runtime.agent.reopen(key.tenant_id, record.id)
        if runtime.jobs is not None:
            await queue_resume(runtime.agent, runtime.jobs, key.tenant_id, record.id,
                               by=key.principal_id)
        elif not await runtime.agent.claim(grant):
            raise Conflict("the run is being resumed already")
    except RunRefused as refused:
        raise problem(403, "Run Refused", f"the resume was refused: {refused}") from None
    except Conflict as exc:
        raise problem(409, "Conflict", str(exc)) from None
    if runtime.jobs is not None:
        return web.json_response(RunAccepted(id=record.id, status="queued").model_dump(),
                                 status=202)
    executor = request.config_dict[EXECUTOR]

    async def job() -> None:
        async with executor.slot(key.tenant_id):
            await runtime.agent.resume(grant)

    # Executed here, as the chat platforms' Resume buttons are: it holds the lease now.
    executor.submit(f"resume:{record.id}", job)
    return web.json_response(RunAccepted(id=record.id, status="running").model_dump(),
                             status=202)
