"""The HTTP API's acknowledgement and a direct MCP tool call, against bare servers.

Two questions, each at ``--clients`` concurrent clients (200), in one run:

- ``POST /v1/runs``: from sending to reading the 202 (key check, rate limit, body
  validation, the run recorded ``queued``, the answer), against a bare aiohttp handler
  that parses the same JSON body and answers 202 with a fresh id;
- MCP ``tools/call budget.status``: the call alone (each client's session is
  initialised beforehand, untimed), against a bare server of the same SDK (``FastMCP``,
  stateless Streamable HTTP under uvicorn) whose ``budget_status`` tool returns a
  constant. On Tenantry the call is a one-step run: authorised, metered, audited.

Tenantry runs as ``tenantry serve`` would on the embedded defaults (a temporary SQLite
file, the sandbox model), one tenant with a key; the runs the API accepts execute in
the app's executor after their answers. The clients run in a child process (their own
event loop and core). Each level runs ``--repeats`` times per side, alternating; the
figures are the medians of the batches' p50 and p99. Targets: p99 <= 100 ms and
<= 1.5x the bare server.

    .venv/bin/python benchmarks/api.py [--clients 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvicorn
from aiohttp import web
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.fastmcp import FastMCP

from bots import api
from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings
from bots.web import MCP, RUNTIME, create_app
from core.admin import Admin
from core.logs import configure
from core.settings import Settings
from core.tenants import Plan, create_plan

PLAN = Plan(id="bench", monthly_tokens=10**9, monthly_cost_microcents=10**13,
            monthly_tool_calls=10**7, run_tokens=200_000, run_tool_calls=20,
            run_walltime_ms=60_000, run_cost_microcents=10**10,
            capabilities=frozenset({"budget.status"}))
BODY = {"prompt": "How much have we spent this month?"}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


# The clients (a child process) ------------------------------------------------------

async def post_batch(url: str, keys: list[str], clients: int) -> list[float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(n: int) -> float:
            headers = {"Authorization": f"Bearer {keys[n % len(keys)]}"} if keys else {}
            started = time.perf_counter()
            async with session.post(url, json=BODY, headers=headers) as response:
                await response.read()
                assert response.status == 202, response.status
            return (time.perf_counter() - started) * 1000

        await asyncio.gather(*(one(n) for n in range(8)))  # warm connections
        return list(await asyncio.gather(*(one(n) for n in range(clients))))


async def mcp_batch(url: str, key: str | None, tool: str, clients: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    ready = asyncio.Barrier(clients + 1)
    go = asyncio.Event()
    times: list[float] = []

    async def one() -> None:
        async with (httpx.AsyncClient(headers=headers, timeout=120) as http,
                    streamable_http_client(url, http_client=http) as (read, write, _),
                    ClientSession(read, write) as session):
            await session.initialize()
            await ready.wait()
            await go.wait()
            started = time.perf_counter()
            result = await session.call_tool(tool, {})
            times.append((time.perf_counter() - started) * 1000)
            assert not result.isError, result

    tasks = [asyncio.create_task(one()) for _ in range(clients)]
    await ready.wait()
    go.set()
    await asyncio.gather(*tasks)
    return times


def client(job: tuple[str, str, list[str], int]) -> list[float]:
    kind, url, keys, clients = job
    if kind == "post":
        return asyncio.run(post_batch(url, keys, clients))
    key = keys[0] if keys else None
    tool = "budget.status" if key else "budget_status"
    return asyncio.run(mcp_batch(url, key, tool, clients))


# The servers (this process) ---------------------------------------------------------

async def bare_api(request: web.Request) -> web.Response:
    body = await request.json()
    assert isinstance(body.get("prompt"), str)
    return web.json_response({"id": str(uuid.uuid4()), "status": "queued"}, status=202)


def bare_mcp() -> FastMCP:
    server = FastMCP("bare", stateless_http=True, json_response=False)

    @server.tool()
    def budget_status() -> dict[str, Any]:
        """The month's usage (a constant)."""
        return {"period": "2026-12", "tokens": {"used": 0, "allowance": 10**9}}

    return server


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def main(clients: int, repeats: int) -> None:
    configure("ERROR")
    print(f"HTTP API and MCP at {clients} concurrent clients; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
                            data_dir=Path(tmp) / "data", model="sandbox", embedder="hashing")
        app = create_app(settings, ServerSettings(), mounts=[], mcp=McpSettings(port=0))
        api.add_routes(app)
        tenantry, tenantry_url = await serve(app)
        runtime = app[RUNTIME]
        await runtime.db.run(create_plan, PLAN)
        admin = Admin(runtime.db, runtime.audit, runtime.keyring, by="bench")
        await admin.create_tenant(tenant_id="acme", name="Acme", plan_id="bench")
        # One key per client, as 200 services would call: a single key would meet the
        # per-key rate limit (20/s, bursts of 40), which is not what is measured here.
        keys = [(await admin.create_api_key("acme", f"svc:bench-{n}", role="member")).secret
                for n in range(clients)]
        bare = web.Application()
        bare.router.add_post("/v1/runs", bare_api)
        bare_runner, bare_url = await serve(bare)
        config = uvicorn.Config(bare_mcp().streamable_http_app(), host="127.0.0.1", port=0,
                                log_level="error", lifespan="on")
        bare_mcp_server = uvicorn.Server(config)
        bare_mcp_task = asyncio.create_task(bare_mcp_server.serve())
        while not bare_mcp_server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.05)
        bare_mcp_port = bare_mcp_server.servers[0].sockets[0].getsockname()[1]
        sides = {
            "post": {"tenantry": (f"{tenantry_url}/v1/runs", keys),
                     "bare": (f"{bare_url}/v1/runs", [])},
            "mcp": {"tenantry": (app[MCP].url, keys[:1]),
                    "bare": (f"http://127.0.0.1:{bare_mcp_port}/mcp", [])},
        }
        loop = asyncio.get_running_loop()
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            for kind, label in (("post", "POST /v1/runs acknowledgement"),
                                ("mcp", "MCP tools/call budget.status")):
                figures: dict[str, list[tuple[float, float]]] = {"tenantry": [], "bare": []}
                for _ in range(repeats):
                    for side in ("bare", "tenantry"):
                        url, side_keys = sides[kind][side]
                        times = await loop.run_in_executor(
                            None, pool.apply, client, ((kind, url, side_keys, clients),))
                        figures[side].append((percentile(times, 50), percentile(times, 99)))
                        await asyncio.sleep(1)  # runs accepted by the API execute here
                med = {side: (statistics.median(p for p, _ in f),
                              statistics.median(p for _, p in f)) for side, f in figures.items()}
                (t50, t99), (b50, b99) = med["tenantry"], med["bare"]
                print(f"  {label}: tenantry p50 {t50:.1f} ms, p99 {t99:.1f} ms; bare p50 "
                      f"{b50:.1f} ms, p99 {b99:.1f} ms; ratio p50 {t50 / b50:.2f}x, p99 "
                      f"{t99 / b99:.2f}x (targets: p99 <= 100 ms, <= 1.5x)")
        bare_mcp_server.should_exit = True
        await bare_mcp_task
        await bare_runner.cleanup()
        await tenantry.cleanup()
    print(f"  load average after: {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.repeats))
