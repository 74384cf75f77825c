"""Bad input over MCP, sent as an attacker would: each gets a clear answer, and no run is
left unfinished."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.db.engine import Database
from core.runs import recent_runs
from tests.bots.mcp.test_mcp_server import call, key, text
from tests.support.tenancy import plan, tenant_on

SEARCH = frozenset({"budget.status", "knowledge.search"})


@pytest.mark.parametrize("arguments", [
    {"query": "orders\x00; drop"},
    {"query": "x" * 200_000},
    {"query": 12},
    {"query": {"nested": ["deep"] * 1000}},
    {"unknown": "field"},
])
async def test_bad_tool_arguments_end_the_call_with_a_clear_error(
        db: Database, mcp_url: str, arguments: dict[str, object]) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=SEARCH))

    result = await call(mcp_url, await key(db, "acme"), "knowledge.search", arguments)

    runs = await db.run(recent_runs, "acme", 10)
    assert len(runs) == 1 and runs[0].status in {"completed", "failed"}, runs
    if result.isError:
        assert text(result).strip()


async def test_an_oversized_request_is_refused_by_the_sdks_limit(db: Database,
                                                                  mcp_url: str) -> None:
    await tenant_on(db, "acme", plan("basic", capabilities=SEARCH))
    secret = await key(db, "acme")
    # 5 MiB: over the Streamable HTTP transport's own limit (4 MiB), sized or streamed.
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": ' \
           b'"knowledge.search", "arguments": {"query": "' + b"x" * (5 * 1024 * 1024) + b'"}}}'
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    async with httpx.AsyncClient(timeout=30) as client:
        sized = await client.post(mcp_url, content=body, headers=headers)
        streamed = await client.post(mcp_url, content=chunks(), headers=headers)

    assert (sized.status_code, streamed.status_code) == (413, 413)
    assert await db.run(recent_runs, "acme", 10) == []
