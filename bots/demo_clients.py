"""The demo's API and MCP clients: a tenant's own backend and its people's MCP client.

Beside acme's Slack workspace and Teams organisation, a backend of acme's starts a run
with ``POST /v1/runs`` and reads it back, and an MCP client (the SDK's own) lists its
tools and calls ``budget.status``; both name one session, so ``tenantry audit session``
shows their runs together. Each uses an API key issued as ``tenantry api-keys create``
issues one.
"""

from __future__ import annotations

import json

import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from bots.demo import Transcript, clip
from bots.web import MCP
from core.admin import Admin
from core.runs import SESSION_HEADER, session_runs
from standins.slack.driver import Scenario, runs_of

API_PRINCIPAL = "svc:shop"  # acme's shop backend
MCP_PRINCIPAL = "svc:desk"  # the MCP client on acme's support desk
SESSION = "checkout-7"


async def _issue(s: Scenario, t: Transcript, principal: str) -> str:
    rt = s.runtime
    admin = Admin(rt.db, rt.audit, rt.keyring, by="cli:ops")
    issued = await admin.create_api_key("acme", principal, role="member")
    t.say("acme", f"operator: tenantry api-keys create --tenant acme --principal {principal} "
                  f"-> {issued.secret[:16]}…")
    return issued.secret


async def _api_client(s: Scenario, t: Transcript) -> None:
    secret = await _issue(s, t, API_PRINCIPAL)
    auth = {"Authorization": f"Bearer {secret}"}
    prompt = "What is the refund policy for rockets?"
    async with s.session.post(f"{s.url}/v1/runs", json={"prompt": prompt},
                              headers={**auth, SESSION_HEADER: SESSION}) as response:
        status, accepted = response.status, await response.json()
    t.say("acme", f"{API_PRINCIPAL}: POST /v1/runs {json.dumps({'prompt': prompt})} "
                  f"({SESSION_HEADER}: {SESSION})")
    t.say("acme", f"  -> HTTP {status} {json.dumps(accepted)}")
    await s.idle()
    run_id = str(accepted.get("id"))
    async with s.session.get(f"{s.url}/v1/runs/{run_id}", headers=auth) as response:
        read_status, run = response.status, await response.json()
    t.say("acme", f"{API_PRINCIPAL}: GET /v1/runs/{run_id}")
    t.say("acme", f"  -> HTTP {read_status} run {run_id}: {run.get('status')}, "
                  f"usage {json.dumps(run.get('usage'))}")
    for line in str(run.get("answer") or "").splitlines():
        t.say("acme", clip(f"  > {line}", 160))
    t.check("acme's backend starts a run over the API and reads its grounded answer",
            status == 202 and read_status == 200 and run.get("status") == "completed"
            and "30 days" in str(run.get("answer")))


async def _mcp_client(s: Scenario, t: Transcript) -> None:
    secret = await _issue(s, t, MCP_PRINCIPAL)
    url = s.app[MCP].url
    headers = {"Authorization": f"Bearer {secret}", SESSION_HEADER: SESSION}
    async with (httpx.AsyncClient(headers=headers) as http,
                streamable_http_client(url, http_client=http) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        listed = await session.list_tools()
        result = await session.call_tool("budget.status", {})
    names = [tool.name for tool in listed.tools]
    t.say("acme", f"{MCP_PRINCIPAL}'s MCP client at {url} ({SESSION_HEADER}: {SESSION}): "
                  f"tools/list")
    t.say("acme", f"  -> {', '.join(names)}")
    [run] = [r for r in await runs_of(s, "acme") if r.principal_id == MCP_PRINCIPAL]
    t.say("acme", f"{MCP_PRINCIPAL}'s MCP client: tools/call budget.status")
    t.say("acme", clip(f"  -> run {run.id}: {run.status}; {_text(result)}", 160))
    t.check("acme's MCP client lists its own tools and calls budget.status as a run",
            "budget.status" in names and "audit.recent" not in names
            and not result.isError and run.status == "completed")


def _text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content
                    if isinstance(block, types.TextContent))


async def api_and_mcp(s: Scenario, t: Transcript) -> None:
    """Acme's backend over the API and its MCP client, in one session."""
    await _api_client(s, t)
    await _mcp_client(s, t)
    found = await s.runtime.db.run(session_runs, "acme", SESSION)
    t.say("acme", f"operator: tenantry audit session --tenant acme {SESSION}")
    for run in found:
        t.say("acme", f"  {run.id}\t{run.initiator}\t{run.principal_id}\t{run.status}")
    t.check("the session lists acme's API and MCP runs together",
            sorted(r.principal_id for r in found) == [MCP_PRINCIPAL, API_PRINCIPAL])


def transport(principal_id: str) -> str:
    """Which transport a demo run of acme's came by, from its principal."""
    by = {API_PRINCIPAL: "api", MCP_PRINCIPAL: "mcp"}
    return by.get(principal_id, principal_id.split(":", 1)[0])
