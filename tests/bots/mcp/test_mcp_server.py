"""The MCP server, driven by the SDK's own client over Streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from bots.cli_audit import audit
from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings
from bots.web import MCP, create_app
from core.admin import Admin
from core.audit.events import API_KEY_REFUSED, RUN_STARTED, TOOL_REFUSED
from core.audit.log import recent_events
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from core.runs import recent_runs
from core.settings import Settings
from tests.support.auditing import audit_log
from tests.support.tenancy import plan, tenant_on


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


async def test_a_tenants_mcp_runs_wait_for_its_places(settings: Settings, db: Database) -> None:
    """Four asks and calls at once, with one place per tenant: one run at a time."""
    app = create_app(settings, ServerSettings(runs_in="process", runs_per_tenant=1), mounts=[],
                     mcp=McpSettings(port=0))
    server = TestServer(app)
    await server.start_server()
    try:
        await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
        secret = await key(db, "acme")
        url = str(app[MCP].url)
        await asyncio.gather(call(url, secret, "ask", {"prompt": "how much have we used?"}),
                             call(url, secret, "ask", {"prompt": "and now?"}),
                             call(url, secret, "budget.status"),
                             call(url, secret, "budget.status"))
    finally:
        await server.close()
    log = sorted(await db.run(recent_events, "acme", 500), key=lambda e: e.seq)
    running: set[str] = set()
    for event in log:
        if event.run_id is None:
            continue
        if event.event == RUN_STARTED:
            assert not running, f"{event.run_id} started while {running} ran"
            running.add(event.run_id)
        elif event.event.startswith("run.") and event.event != RUN_STARTED:
            running.discard(event.run_id)
    assert len([e for e in log if e.event == RUN_STARTED]) == 4


async def raw_list(url: str, authorization: str | None) -> httpx.Response:
    """``tools/list`` posted by hand, as a client with this ``Authorization`` would."""
    headers = {"Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with httpx.AsyncClient() as client:
        return await client.post(url, headers=headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/list"})


async def bad_credential(db: Database, case: str) -> str | None:
    """The ``Authorization`` header of each kind of bad credential, for tenant acme."""
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    admin = Admin(db, audit_log(db), Keyring([generate_key()]), by="cli:ops")
    good = (await admin.create_api_key("acme", "svc:desk")).secret
    if case == "revoked":
        await admin.revoke_api_key("acme", good[:16])
    elif case == "expired":
        good = (await admin.create_api_key("acme", "svc:desk",
                                           expires_in=timedelta(milliseconds=20))).secret
        await asyncio.sleep(0.05)
    elif case == "tenant_suspended":
        await admin.set_status("acme", "suspended")
    return {"missing": None, "basic": "Basic abc", "malformed": "Bearer not-a-key",
            "unknown": "Bearer tnt_000000000000_" + "A" * 43}.get(case, f"Bearer {good}")


@pytest.mark.parametrize(("case", "status", "reason"), [
    ("missing", 401, "Authentication required"),
    ("basic", 401, "Authentication required"),
    ("malformed", 401, "the bearer token is not a Tenantry API key"),
    ("unknown", 401, "the API key is not known"),
    ("revoked", 401, "the API key was revoked"),
    ("expired", 401, "the API key has expired"),
    ("tenant_suspended", 403, "the API key's tenant is suspended"),
])
async def test_a_bad_credential_is_refused_with_its_reason_and_nothing_runs(
        db: Database, mcp_url: str, case: str, status: int, reason: str) -> None:
    authorization = await bad_credential(db, case)

    response = await raw_list(mcp_url, authorization)

    assert response.status_code == status
    assert response.json()["error_description"] == reason
    if status == 401:
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ") and f'error_description="{reason}"' in challenge
        metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
        async with httpx.AsyncClient(headers={"Authorization": authorization or ""}) as client:
            metadata = (await client.get(metadata_url)).json()  # public, whatever is sent
        assert metadata["resource"] == mcp_url
    else:
        assert "WWW-Authenticate" not in response.headers
    assert await db.run(recent_runs, "acme", 10) == []
    refusals = await db.run(recent_events, "acme", 50, [API_KEY_REFUSED])
    stored = case in ("revoked", "expired", "tenant_suspended")
    assert [e.fields["reason"] for e in refusals] == ([case] if stored else [])
    assert authorization is None or all(authorization not in str(e.fields) for e in refusals)


async def test_a_revoked_key_is_refused_on_the_next_request(db: Database,
                                                            mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
    secret = await key(db, "acme")
    assert await tool_names(mcp_url, secret)
    admin = Admin(db, audit_log(db), Keyring([generate_key()]), by="cli:ops")
    await admin.revoke_api_key("acme", secret[:16])
    assert (await raw_list(mcp_url, f"Bearer {secret}")).status_code == 401


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
