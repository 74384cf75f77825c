"""The MCP server beside the web app, for the tests of this folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from bots import api
from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings
from bots.web import MCP, create_app
from core.settings import Settings


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[TestServer]:
    """The web app (the HTTP API) with its MCP server beside it, executing its runs
    itself on either database (``tests/scenarios/test_mcp_workers.py`` has the workers)."""
    app = create_app(settings, ServerSettings(runs_in="process"), mounts=[],
                     mcp=McpSettings(port=0))
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
