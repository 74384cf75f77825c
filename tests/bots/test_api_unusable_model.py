"""A deployment whose model cannot run (no Anthropic key): the API and MCP say so without
naming what is missing (the server logs that), and nothing runs."""

from __future__ import annotations

import httpx
import pytest
import structlog
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

import bots.api.runs
import bots.mcp.server
from bots import api
from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings
from bots.web import MCP, create_app
from bots.wording import MODEL_UNAVAILABLE
from core.admin import Admin
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from core.runs import recent_runs
from core.settings import Settings
from tests.bots.mcp.test_mcp_server import call, text
from tests.support.auditing import audit_log
from tests.support.tenancy import plan, tenant_on


async def test_a_run_asked_for_without_model_credentials_is_503_and_logged(
        settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "TENANTRY_ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    # The shared logger may be bound and cached under an earlier test's configuration,
    # out of the capture's reach: these modules log through a fresh one.
    monkeypatch.setattr(bots.api.runs, "log", structlog.get_logger("tenantry"))
    monkeypatch.setattr(bots.mcp.server, "log", structlog.get_logger("tenantry"))
    unusable = settings.model_copy(update={"model": "anthropic:claude-sonnet-4-5",
                                           "anthropic_api_key": None})
    app = create_app(unusable, ServerSettings(), mounts=[], mcp=McpSettings(port=0))
    api.add_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        await tenant_on(db, "acme", plan("basic", capabilities=frozenset({"budget.status"})))
        admin = Admin(db, audit_log(db), Keyring([generate_key()]), by="cli:ops")
        secret = (await admin.create_api_key("acme", "svc:backend")).secret
        with capture_logs() as logged:
            async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
                answer = await client.post("/v1/runs", json={"prompt": "hello"},
                                           headers={"Authorization": f"Bearer {secret}"})
            called = await call(str(app[MCP].url), secret, "budget.status")
    finally:
        await server.close()

    assert answer.status_code == 503
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["detail"] == MODEL_UNAVAILABLE
    assert called.isError and text(called) == f"refused: {MODEL_UNAVAILABLE}"
    assert "ANTHROPIC" not in answer.text + text(called)
    assert sum("ANTHROPIC_API_KEY" in str(entry.get("error")) for entry in logged) == 2
    assert await db.run(recent_runs, "acme", 10) == []
