"""The MCP server, driven by the SDK's own client over Streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from bots import api
from bots.cli_audit import audit
from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings
from bots.web import MCP, create_app
from core.admin import Admin
from core.audit.events import RUN_STARTED, TOOL_REFUSED
from core.audit.log import recent_events
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from core.runs import recent_runs
from core.settings import Settings
from tests.support.auditing import audit_log
from tests.support.tenancy import plan, tenant_on


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[TestServer]:
    """The web app (the HTTP API) with its MCP server beside it."""
    app = create_app(settings, ServerSettings(), mounts=[], mcp=McpSettings(port=0))
    api.add_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def mcp_url(served: TestServer) -> str:
    return str(served.app[MCP].url)


async def key(db: Database, tenant_id: str, role: str = "member") -> str:
    admin = Admin(db, audit_log(db), Keyring([generate_key()]), by="cli:ops")
    return (await admin.create_api_key(tenant_id, "svc:desk", role=role)).secret


async def session_call(url: str, secret: str, name: str | None = None,
                       arguments: dict[str, object] | None = None,
                       headers: dict[str, str] | None = None
                       ) -> types.ListToolsResult | types.CallToolResult:
    async with (bearer(secret, headers) as http,
                streamable_http_client(url, http_client=http) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        if name is None:
            return await session.list_tools()
        return await session.call_tool(name, arguments or {})


def bearer(secret: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """The HTTP client an MCP client configured with the key's header (and any other
    headers, a session's) uses."""
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {secret}", **(headers or {})},
                             timeout=httpx.Timeout(30, read=60))


async def tool_names(url: str, secret: str) -> list[str]:
    listed = await session_call(url, secret)
    assert isinstance(listed, types.ListToolsResult)
    return sorted(tool.name for tool in listed.tools)


async def call(url: str, secret: str, name: str, arguments: dict[str, object] | None = None,
               headers: dict[str, str] | None = None) -> types.CallToolResult:
    result = await session_call(url, secret, name, arguments, headers)
    assert isinstance(result, types.CallToolResult)
    return result


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_two_tenants_keys_list_their_own_tools(db: Database, mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    await tenant_on(db, "globex", plan("full", capabilities=frozenset(
        {"budget.status", "audit.recent", "runs.status"})))
    acme, globex = await key(db, "acme"), await key(db, "globex", role="admin")
    assert await tool_names(mcp_url, acme) == ["ask", "budget.status"]
    assert await tool_names(mcp_url, globex) == [
        "ask", "audit.recent", "budget.status", "runs.status"]


async def test_a_licensed_tool_answers_as_a_one_step_run(db: Database, mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    result = await call(mcp_url, await key(db, "acme"), "budget.status")
    assert not result.isError
    # The call is metered before it runs: it counts itself.
    assert json.loads(text(result))["tool_calls"]["used"] == 1
    assert result.structuredContent is not None and "period" in result.structuredContent


async def test_an_unlicensed_tool_is_refused_and_audited(db: Database, mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    result = await call(mcp_url, await key(db, "acme", role="admin"), "audit.recent")
    assert result.isError and text(result).startswith("refused:")
    refused = [e for e in await db.run(recent_events, "acme", 20) if e.event == TOOL_REFUSED]
    assert len(refused) == 1
    assert refused[0].fields["capability"] == "audit.recent"
    assert refused[0].fields["reason"] == "not_licensed"
    assert refused[0].fields["principal"] == "svc:desk"


async def test_a_budget_halt_is_a_tool_error_naming_the_ceiling(db: Database,
                                                                 mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("instant", run_walltime_ms=0,
                                     capabilities=frozenset({"budget.status"})))
    result = await call(mcp_url, await key(db, "acme"), "budget.status")
    assert result.isError
    assert text(result).startswith("halted: budget ceiling walltime_ms reached: limit 0")


async def test_ask_answers_with_progress(db: Database, mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    seen: list[str] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with (bearer(await key(db, "acme")) as http,
                streamable_http_client(mcp_url, http_client=http) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        result = await session.call_tool("ask", {"prompt": "how much have we used?"},
                                         progress_callback=progress)
    assert not result.isError and text(result)
    assert seen and seen[0].startswith("run ") and seen[0].endswith(" started")


@pytest.mark.parametrize("authorization", [None, "Bearer tnt_000000000000_" + "A" * 43,
                                           "Bearer not-a-key", "Basic abc"])
async def test_a_missing_or_bad_key_is_401_with_www_authenticate(
        mcp_url: str, authorization: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with httpx.AsyncClient() as client:
        response = await client.post(mcp_url, headers=headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert response.status_code == 401
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge
        metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
        metadata = (await client.get(metadata_url)).json()
    assert metadata["resource"] == mcp_url


async def test_a_revoked_key_is_refused_on_the_next_request(db: Database,
                                                            mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    secret = await key(db, "acme")
    assert await tool_names(mcp_url, secret)
    admin = Admin(db, audit_log(db), Keyring([generate_key()]), by="cli:ops")
    await admin.revoke_api_key("acme", secret[:16])
    async with httpx.AsyncClient() as client:
        response = await client.post(mcp_url, headers={
            "Authorization": f"Bearer {secret}",
            "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401


async def api_run(served: TestServer, secret: str, headers: dict[str, str]) -> str:
    """The id of a run started with ``POST /v1/runs`` (accepted: it may still be queued)."""
    async with httpx.AsyncClient(base_url=str(served.make_url(""))) as client:
        accepted = await client.post("/v1/runs", json={"prompt": "hello"}, headers={
            "Authorization": f"Bearer {secret}", **headers})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["id"])


async def test_a_session_header_stitches_mcp_and_api_runs_together(
        db: Database, settings: Settings, served: TestServer, mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    secret = await key(db, "acme")
    session = {"X-Tenantry-Session": "checkout-7"}

    called = await call(mcp_url, secret, "budget.status", headers=session)
    asked = await call(mcp_url, secret, "ask", {"prompt": "how much have we used?"},
                       headers=session)
    api_run_id = await api_run(served, secret, session)
    await call(mcp_url, secret, "budget.status")  # no session: not one of its runs
    listed = await asyncio.to_thread(
        lambda: CliRunner().invoke(audit, ["session", "--tenant", "acme", "checkout-7",
                                           "--json"], obj=settings))

    assert not called.isError and not asked.isError
    runs = await db.run(recent_runs, "acme")
    in_session = {run.id for run in runs if run.correlation_id == "session:checkout-7"}
    assert len(runs) == 4 and len(in_session) == 3 and api_run_id in in_session
    # The MCP runs' own audit events carry the session.
    started = {e.run_id: e.fields["correlation_id"]
               for e in await db.run(recent_events, "acme", 50) if e.event == RUN_STARTED}
    assert [started[run_id] for run_id in sorted(in_session - {api_run_id})] == [
        "session:checkout-7"] * 2
    assert listed.exit_code == 0, listed.output
    assert {run["run_id"] for run in json.loads(listed.stdout)} == in_session


async def test_a_malformed_session_header_is_refused_and_runs_nothing(
        db: Database, mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    result = await call(mcp_url, await key(db, "acme"), "budget.status",
                        headers={"X-Tenantry-Session": "no spaces"})
    assert result.isError
    assert text(result) == ("refused: X-Tenantry-Session must be "
                            "1-100 letters, digits or . _ : -")
    assert await db.run(recent_runs, "acme") == []
