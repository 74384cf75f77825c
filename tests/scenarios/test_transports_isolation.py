"""Three tenants interleaving Slack, HTTP API and MCP runs never see each other.

A property over random interleavings (a seeded generator per case, so a failure names
the seed that reproduces it): whatever the order, each tenant's runs, tools, memory
and audit events are its own, through every transport at once. The app serves Slack
and the API; the MCP server is a second app on the same database, as a deployment
runs several processes.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp.test_utils import TestServer

from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings
from bots.web import MCP, create_app
from core.errors import NotFound
from core.runs import get_run
from standins.slack.api import SlackUser
from tests.bots.mcp.test_mcp_server import call as mcp_call
from tests.bots.mcp.test_mcp_server import text, tool_names
from tests.scenarios.api_client import call as api_call
from tests.scenarios.api_client import issue_key
from tests.scenarios.harness import Scenario, Workspace, audit_events, runs_of
from tests.support.tenancy import plan

TENANTS = {  # each licenses a different set, so tool lists tell tenants apart (a member
    # may use each of them: audit.* is for admins)
    "acme": frozenset({"budget.status", "knowledge.search", "runs.status"}),
    "globex": frozenset({"budget.status", "runs.status"}),
    "initech": frozenset({"budget.status"}),
}
TRANSPORTS = ("slack", "api", "mcp")


@dataclass
class Tenant:
    id: str
    workspace: Workspace
    user: str
    key: str
    runs: set[str] = field(default_factory=set)


@pytest.fixture
async def mcp_url(scenario: Scenario) -> AsyncIterator[str]:
    app = create_app(scenario.settings, ServerSettings(), mounts=[], mcp=McpSettings(port=0))
    server = TestServer(app)
    await server.start_server()
    try:
        yield app[MCP].url
    finally:
        await server.close()


async def world(scenario: Scenario) -> dict[str, Tenant]:
    found: dict[str, Tenant] = {}
    for n, (tenant_id, capabilities) in enumerate(TENANTS.items()):
        await scenario.tenant(tenant_id, plan(f"plan-{tenant_id}", capabilities=capabilities))
        user = SlackUser(f"U{n + 1}")
        workspace = await scenario.link_workspace(f"T{n + 1}", tenant_id, users=[user])
        key = await issue_key(scenario, tenant_id, "svc:desk", role="member")
        await api_call(scenario, "POST", "/v1/memory", key,
                       json={"source": f"{tenant_id}.md",
                             "text": f"The secret word of {tenant_id} is {tenant_id}-word."})
        found[tenant_id] = Tenant(tenant_id, workspace, user.id, key)
    return found


async def one_run(scenario: Scenario, mcp_url: str, tenant: Tenant, transport: str,
                  n: int) -> None:
    """One run of ``tenant`` through ``transport``, asking for what another might own."""
    prompt = f"Check budget.status and knowledge.search for the secret word ({n})"
    if transport == "slack":
        await scenario.mention(tenant.workspace, tenant.user, prompt)
        await scenario.idle()
    elif transport == "api":
        started = await api_call(scenario, "POST", "/v1/runs", tenant.key,
                                 json={"prompt": prompt})
        assert started.status == 202, started.body
        tenant.runs.add(started.body["id"])
        await scenario.idle()
    else:
        result = await mcp_call(mcp_url, tenant.key, "budget.status")
        assert not result.isError, text(result)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_interleaved_transports_keep_every_tenant_to_itself(
        scenario: Scenario, mcp_url: str, seed: int) -> None:
    tenants = await world(scenario)
    rng = random.Random(seed)
    for n in range(12):
        tenant = tenants[rng.choice(sorted(tenants))]
        await one_run(scenario, mcp_url, tenant, rng.choice(TRANSPORTS), n)
    await scenario.idle()

    every = {t: await runs_of(scenario, t) for t in tenants}
    for tenant_id, tenant in tenants.items():
        others = {r.id for o, found in every.items() if o != tenant_id for r in found}
        own = {r.id for r in every[tenant_id]}
        assert tenant.runs <= own and not own & others
        # Runs: another tenant's ids are not found, through the core or the API.
        for run_id in sorted(others)[:5]:
            assert (await api_call(scenario, "GET", f"/v1/runs/{run_id}", tenant.key)
                    ).status == 404
            with pytest.raises(NotFound):
                await scenario.db.run(get_run, tenant_id, run_id)
        # Tools: MCP lists exactly what the tenant licenses (and ask).
        assert set(await tool_names(mcp_url, tenant.key)) == TENANTS[tenant_id] | {"ask"}
        # Memory: only the tenant's own document is found.
        searched = await api_call(scenario, "POST", "/v1/memory/search", tenant.key,
                                  json={"query": "secret word"})
        assert searched.status == 200
        sources = {hit["source"] for hit in searched.body}
        assert sources == {f"{tenant_id}.md"}, sources
        # Audit: every event of the tenant's log names only its own runs.
        logged = {e.run_id for e in await audit_events(scenario, tenant_id) if e.run_id}
        assert logged <= own and not logged & others
        # Answers: no other tenant's secret word reached this tenant's answers.
        answers = " ".join(r.answer or "" for r in every[tenant_id])
        assert not [o for o in tenants if o != tenant_id and f"{o}-word" in answers]
