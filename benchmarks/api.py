"""The HTTP API's acknowledgement and a direct MCP tool call, against bare servers.

Two questions, each of ``--clients`` clients (200) sending one request each, first all
at once (a burst: the last answer waits for the 199 before it), then arriving at a
steady rate (``--post-rate`` 100/s, ``--mcp-rate`` 20/s: what an acknowledgement costs
when it does not queue behind the rest), in one run:

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

    .venv/bin/python benchmarks/api.py [--clients 200] [--repeats 3] [--post-rate 100]
        [--mcp-rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvicorn
from aiohttp import web
from figures import percentile, scratch_database
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.fastmcp import FastMCP
from pydantic import SecretStr

from bots import api
from bots.jobs.schema import install_queue_schema
from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings
from bots.web import MCP, RUNTIME, create_app
from core.admin import Admin
from core.db.engine import Database
from core.db.migrate import upgrade
from core.logs import configure
from core.settings import Settings
from core.tenants import Plan, create_plan

PLAN = Plan(id="bench", monthly_tokens=10**9, monthly_cost_microcents=10**13,
            monthly_tool_calls=10**7, run_tokens=200_000, run_tool_calls=20,
            run_walltime_ms=60_000, run_cost_microcents=10**10,
            capabilities=frozenset({"budget.status"}))
BODY = {"prompt": "How much have we spent this month?"}



# The clients (a child process) ------------------------------------------------------

async def post_batch(url: str, keys: list[str], clients: int, rate: float) -> list[float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(n: int, at: float = 0.0) -> float:
            headers = {"Authorization": f"Bearer {keys[n % len(keys)]}"} if keys else {}
            await asyncio.sleep(at)
            started = time.perf_counter()
            async with session.post(url, json=BODY, headers=headers) as response:
                await response.read()
                assert response.status == 202, response.status
            return (time.perf_counter() - started) * 1000

        await asyncio.gather(*(one(n) for n in range(8)))  # warm connections
        return list(await asyncio.gather(*(one(n, n / rate if rate else 0.0)
                                           for n in range(clients))))


async def mcp_batch(url: str, key: str | None, tool: str, clients: int,
                    rate: float) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    ready = asyncio.Barrier(clients + 1)
    go = asyncio.Event()
    times: list[float] = []

    async def one(n: int) -> None:
        async with (httpx.AsyncClient(headers=headers, timeout=120) as http,
                    streamable_http_client(url, http_client=http) as (read, write, _),
                    ClientSession(read, write) as session):
            await session.initialize()
            await ready.wait()
            await go.wait()
            await asyncio.sleep(n / rate if rate else 0.0)
            started = time.perf_counter()
            result = await session.call_tool(tool, {})
            times.append((time.perf_counter() - started) * 1000)
            assert not result.isError, result

    tasks = [asyncio.create_task(one(n)) for n in range(clients)]
    await ready.wait()
    go.set()
    await asyncio.gather(*tasks)
    return times


def client(job: tuple[str, str, list[str], int, float]) -> list[float]:
    kind, url, keys, clients, rate = job
    if kind == "post":
        return asyncio.run(post_batch(url, keys, clients, rate))
    key = keys[0] if keys else None
    tool = "budget.status" if key else "budget_status"
    return asyncio.run(mcp_batch(url, key, tool, clients, rate))


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


@contextlib.asynccontextmanager
async def tenantry_database(server_url: str | None, folder: Path
                            ) -> AsyncIterator[str]:
    """The embedded SQLite file, or a scratch PostgreSQL database with the job queue."""
    if server_url is None:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    with scratch_database(server_url) as url:
        db = Database(url)
        await upgrade(db)
        await db.dispose()
        await install_queue_schema(url)
        yield url


async def main(clients: int, repeats: int, post_rate: float, mcp_rate: float,
               server_url: str | None) -> None:
    configure("ERROR")
    where = "PostgreSQL, runs queued for workers" if server_url else "SQLite, runs in process"
    print(f"HTTP API and MCP, {clients} clients, {where}; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        async with tenantry_database(server_url, Path(tmp)) as url:
            await measure(clients, repeats, post_rate, mcp_rate, Settings(
                database_url=url, data_dir=Path(tmp) / "data", model="sandbox",
                embedder="hashing", job_key=SecretStr("bench-job-key")))
    print(f"  load average after: {os.getloadavg()}")


async def measure(clients: int, repeats: int, post_rate: float, mcp_rate: float,
                  settings: Settings) -> None:
    """Both questions against Tenantry on ``settings`` and the bare servers."""
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
        for kind, label, rate in (
                ("post", "POST /v1/runs acknowledgement", 0.0),
                ("post", "POST /v1/runs acknowledgement", post_rate),
                ("mcp", "MCP tools/call budget.status", 0.0),
                ("mcp", "MCP tools/call budget.status", mcp_rate)):
            figures: dict[str, list[tuple[float, float]]] = {"tenantry": [], "bare": []}
            for _ in range(repeats):
                for side in ("bare", "tenantry"):
                    url, side_keys = sides[kind][side]
                    times = await loop.run_in_executor(
                        None, pool.apply, client, ((kind, url, side_keys, clients, rate),))
                    figures[side].append((percentile(times, 50), percentile(times, 99)))
                    await asyncio.sleep(1)  # runs accepted by the API execute here
            med = {side: (statistics.median(p for p, _ in f),
                          statistics.median(p for _, p in f)) for side, f in figures.items()}
            (t50, t99), (b50, b99) = med["tenantry"], med["bare"]
            arrival = f"{rate:g}/s" if rate else "all at once"
            print(f"  {label}, {clients} clients {arrival}: tenantry p50 {t50:.1f} ms, "
                  f"p99 {t99:.1f} ms; bare p50 {b50:.1f} ms, p99 {b99:.1f} ms; ratio p50 "
                  f"{t50 / b50:.2f}x, p99 {t99 / b99:.2f}x (targets: p99 <= 100 ms, "
                  f"<= 1.5x)")
    bare_mcp_server.should_exit = True
    await bare_mcp_task
    await bare_runner.cleanup()
    await tenantry.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--post-rate", type=float, default=100.0)
    parser.add_argument("--mcp-rate", type=float, default=20.0)
    parser.add_argument("--database-url", help="a PostgreSQL server: Tenantry on a scratch "
                        "database there, its runs queued for workers (none run), as "
                        "'tenantry serve' acknowledges on PostgreSQL")
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.repeats, args.post_rate, args.mcp_rate,
                     args.database_url))
