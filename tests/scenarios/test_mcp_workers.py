"""MCP ``ask`` on PostgreSQL: the web process only accepts; a worker process runs it.

The run is queued as every run of such a deployment is, a real worker (scripted model:
two ``counter.bump`` calls, then an answer) executes it, and the MCP client, waiting on
its ``tools/call``, hears each tool call as a progress notification and gets the
answer. A direct ``tools/call`` is one step and stays in the web process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings
from bots.web import MCP
from core.audit import events
from core.settings import Settings
from tests.bots.mcp.test_mcp_server import bearer, key, text
from tests.scenarios.harness import Scenario, audit_events, open_scenario, runs_of
from tests.support.tenancy import plan
from tests.support.workers import Workers

pytestmark = pytest.mark.postgres


@pytest.fixture
async def web(pg_settings: Settings) -> AsyncIterator[Scenario]:
    """``serve`` on PostgreSQL with MCP: runs go to the queue."""
    async with open_scenario(pg_settings, server=ServerSettings(runs_in="auto"),
                             mcp=McpSettings(port=0)) as scenario:
        yield scenario


async def test_an_ask_is_run_by_a_worker_and_answered_with_its_progress(
        web: Scenario, tmp_path: Path) -> None:
    await web.tenant("acme", plan("bump", capabilities=frozenset({"counter.bump"})))
    secret = await key(web.db, "acme")
    workers = Workers(web.settings, tmp_path / "effects.txt")
    seen: list[str] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    try:
        await workers.start(1)
        async with (bearer(secret) as http,
                    streamable_http_client(str(web.app[MCP].url), http_client=http)
                    as (read, write, _),
                    ClientSession(read, write) as session):
            await session.initialize()
            result = await session.call_tool("ask", {"prompt": "bump it twice"},
                                             progress_callback=progress)
    finally:
        await workers.stop_all()

    assert not result.isError, text(result)
    assert "bumped twice" in text(result)
    [run] = await runs_of(web, "acme")
    assert (run.status, run.principal_id) == ("completed", "svc:desk")
    assert seen[0] == f"run {run.id} queued for a worker"
    assert seen[1:] == ["calling counter.bump", "calling counter.bump"]
    started = [e for e in await audit_events(web, "acme") if e.event == events.RUN_STARTED]
    assert len(started) == 1, "started once, by the worker"
    _executed, applied = workers.effects_seen()
    assert sorted(applied.values()) == [1, 1], "each tool step applied once"
