"""The MCP server's tools: the caller's own tools from the run resolver, and ``ask``.

``tools/list`` opens a context from the request's token and lists exactly the
bindings a run under it would be offered (``core.allocation.offered``): unlicensed or
forbidden capabilities are never listed. ``tools/call`` of a capability is a one-step
run (``AgentService.call_tool``), executed here within the executor's slots: no
tenant's MCP clients take more than its places, nor all of the process's, whatever
they send at once. ``ask`` is a full run, executed where the deployment executes runs
(here, in the same slots, or queued for a worker on PostgreSQL, followed through its
audit events), with progress notifications as its tools are called. Both record an
``X-Tenantry-Session`` header as the run's correlation id, exactly as ``POST /v1/runs``
does, so ``tenantry audit session`` lists a session's runs over every transport
together. Tool names are the capability names (``budget.status``): MCP allows dots in
tool names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.lowlevel import Server
from starlette.requests import Request

from bots.executor import Executor
from bots.mcp import wording
from bots.mcp.auth import Caller
from bots.runtime import Runtime
from bots.wording import MODEL_UNAVAILABLE
from core.agent import RunOutcome
from core.allocation import offered
from core.audit import events
from core.audit.log import run_events_after
from core.builder import RunGrant
from core.context import TenantContext
from core.errors import ConfigurationError, TenantryError
from core.logs import log
from core.runs import (
    FINAL_STATUSES,
    SESSION_HEADER,
    get_run,
    is_session_id,
    session_correlation,
)
from core.toolset import build_toolset

ASK = "ask"
FOLLOW_S = 0.2
"""How often an ``ask`` a worker executes looks for the run's progress."""
ASK_TOOL = types.Tool(
    name=ASK,
    description="Ask Tenantry a question in plain words: it works on it with this "
    "workspace's tools, within its budget, and answers.",
    inputSchema={"type": "object", "properties": {"prompt": {"type": "string"}},
                 "required": ["prompt"]},
)


def create_server(runtime: Runtime, executor: Executor) -> Server[Any, Request]:
    """The low-level MCP server answering for ``runtime``'s tenants, its runs in
    ``executor``'s slots."""
    server: Server[Any, Request] = Server("tenantry")

    def request() -> Request:
        found = server.request_context.request
        assert found is not None and isinstance(found.user, AuthenticatedUser)
        return found

    async def grant(correlation_id: str | None = None) -> RunGrant:
        caller = Caller.of(request().user.access_token)
        return await runtime.agent.open(
            tenant_id=caller.tenant_id, principal_id=caller.principal_id,
            principal_kind="service", initiator="user", correlation_id=correlation_id)

    @server.list_tools()  # type: ignore[no-untyped-call,untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        tools = build_toolset(offered(runtime.registry, await grant())).tools.values()
        return [ASK_TOOL, *(types.Tool(name=t.tool_def.name.replace("__", "."),
                                       description=t.tool_def.description,
                                       inputSchema=t.tool_def.parameters_json_schema)
                            for t in tools)]

    @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        session = request().headers.get(SESSION_HEADER)
        if session is not None and not is_session_id(session):
            return wording.bad_session()
        try:
            run = await grant(None if session is None else session_correlation(session))
            if name == ASK:
                return await ask(server, runtime, run, arguments)
            async with executor.slot(run.ctx.tenant_id):
                return wording.tool_result(await runtime.agent.call_tool(run, name, arguments))
        except ConfigurationError as exc:  # the deployment's to fix, not the caller's
            log.error("mcp call refused: the deployment is misconfigured", error=str(exc))
            return wording.refused(MODEL_UNAVAILABLE)
        except TenantryError as exc:
            return wording.refused(str(exc))

    return server


async def ask(server: Server[Any, Request], runtime: Runtime, run: RunGrant,
              arguments: dict[str, Any]) -> types.CallToolResult:
    """A full run of ``prompt``, executed where the deployment executes runs (here, in
    the executor's slots, or on a worker); each tool it calls is a progress
    notification."""
    prompt = arguments.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return wording.refused("ask needs a prompt: a non-empty string")
    context = server.request_context
    token = context.meta.progressToken if context.meta else None
    steps = 0

    async def progress(message: str) -> None:
        nonlocal steps
        if token is None:
            return
        steps += 1
        await context.session.send_progress_notification(
            token, steps, message=message, related_request_id=str(context.request_id))

    ran: list[RunOutcome] = []

    async def execute() -> None:
        await progress(f"run {run.ctx.run_id} started")
        ran.append(await runtime.agent.start(
            run, prompt, on_tool=lambda capability: progress(f"calling {capability}")))

    await runtime.runner.run(run, prompt, conversation_id=None, execute=execute)
    if not ran:
        await progress(f"run {run.ctx.run_id} queued for a worker")
        ran.append(await followed(runtime, run.ctx, progress))
    return wording.answer(ran[0])


async def followed(runtime: Runtime, ctx: TenantContext,
                   progress: Callable[[str], Awaitable[None]]) -> RunOutcome:
    """The outcome of a run a worker executes, once it ends or halts; each tool it calls
    meanwhile (from the tenant's audit log) is a progress notification."""
    after = 0
    while True:
        # The status first: every event written before it ended is read below.
        record = await runtime.db.run(get_run, ctx.tenant_id, ctx.run_id)
        for event in await runtime.db.run(run_events_after, ctx.tenant_id, ctx.run_id, after):
            after = event.seq
            if event.event == events.TOOL_INVOKED:
                await progress(f"calling {event.fields.get('capability')}")
        if record.status in FINAL_STATUSES or record.status == "halted":
            return await runtime.agent.outcome(ctx.tenant_id, ctx.run_id)
        await asyncio.sleep(FOLLOW_S)
