"""Tests of ``bots.slack.app``: settings, and serving without Slack."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from slack_sdk.signature import SignatureVerifier

from bots import web as web_module
from bots.cli import cli
from bots.slack.settings import SlackSettings
from bots.web import create_app
from core.errors import ConfigurationError
from core.settings import Settings

SECRET = "unit-signing-secret"
SLACK_ENV = ("TENANTRY_SLACK_SIGNING_SECRET", "TENANTRY_SLACK_CLIENT_ID",
             "TENANTRY_SLACK_CLIENT_SECRET")


def headers(body: str, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(),
                      hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def test_the_signature_scheme_is_the_one_slack_sdk_verifies() -> None:
    now = int(time.time())
    signed = headers("a=1", now)
    assert SignatureVerifier(SECRET).is_valid("a=1", str(now), signed["X-Slack-Signature"])


def test_partial_slack_settings_name_what_is_missing() -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_app(Settings(), slack=SlackSettings(client_id="1.2"))
    assert "TENANTRY_SLACK_SIGNING_SECRET" in str(raised.value)
    assert "TENANTRY_SLACK_CLIENT_SECRET" in str(raised.value)
    assert "TENANTRY_SLACK_CLIENT_ID" not in str(raised.value)


def test_tenantry_serve_refuses_partial_slack_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in SLACK_ENV:
        monkeypatch.delenv(name, raising=False)
    env = {"TENANTRY_SLACK_SIGNING_SECRET": "s", "TENANTRY_LOG_LEVEL": "WARNING",
           "TENANTRY_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}"}

    result = CliRunner().invoke(cli, ["serve"], env=env)

    assert result.exit_code == 1
    assert "TENANTRY_SLACK_CLIENT_ID" in result.output
    assert "TENANTRY_SLACK_CLIENT_SECRET" in result.output


class Said:
    """Stands in for the web module's logger to hear what startup says."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, event: str, **_fields: Any) -> None:
        self.lines.append(("info", event))

    def warning(self, event: str, **_fields: Any) -> None:
        self.lines.append(("warning", event))


async def test_without_slack_settings_the_app_serves_with_slack_disabled(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    said = Said()
    monkeypatch.setattr(web_module, "log", said)

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/healthz") as health:
                assert health.status == 200
                assert (await health.json())["ok"] is True
            async with session.post(f"{url}/slack/events", data=b"{}") as events:
                assert events.status in (404, 405)
    finally:
        await runner.cleanup()

    [(level, line)] = [said_line for said_line in said.lines if "slack" in said_line[1]]
    assert level == "warning" and line.startswith("slack disabled")
    assert all(name in line for name in SLACK_ENV)
