from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import click
from click.testing import CliRunner, Result

from bots.cli_teams import teams
from core.audit.events import WORKSPACE_UNLINKED
from core.crypto import Keyring
from core.db.engine import Database
from core.settings import Settings
from installs.teams_links import TeamsLink, record_pending, redeem_link_code
from tests.support.auditing import audit_log

E1 = "0a1b2c3d-0000-4000-8000-00000000e001"
E2 = "0a1b2c3d-0000-4000-8000-00000000e002"
ADMIN = f"teams:{E1}:5f0c1a2b-0000-4000-8000-0000000000a1"
APP_ID = "6d1e2f3a-0000-4000-8000-0000000000b0"


def invoke(settings: Settings, group: click.Group, *args: str) -> Result:
    return CliRunner().invoke(group, list(args), obj=settings)


async def _redeem(settings: Settings, code: str, entra: str = E1) -> TeamsLink:
    db = Database(settings.database_url)
    try:
        return await db.run(redeem_link_code, audit_log(db), Keyring.from_settings(settings),
                            code, entra, ADMIN)
    finally:
        await db.dispose()


async def _pending(url: str, entra: str) -> None:
    db = Database(url)
    try:
        await db.run(record_pending, entra)
    finally:
        await db.dispose()


async def _unlinked_events(url: str) -> list[dict[str, object]]:
    db = Database(url)
    try:
        found = await audit_log(db).recent("acme", 10, events=[WORKSPACE_UNLINKED])
    finally:
        await db.dispose()
    return [dict(event.fields) for event in found]


def code_of(settings: Settings, tenant_id: str = "acme") -> str:
    result = invoke(settings, teams, "link-code", "--tenant", tenant_id)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_link_code_prints_a_code_the_bot_redeems_once(tenants: Settings) -> None:
    result = invoke(tenants, teams, "link-code", "--tenant", "acme", "--ttl-hours", "2")
    assert result.exit_code == 0, result.output
    code = result.stdout.strip()
    assert "\n" not in code and " " not in code
    assert "'link <code>'" in result.stderr and "1:1 chat" in result.stderr
    assert "2 hours" in result.stderr
    linked = asyncio.run(_redeem(tenants, code))
    assert (linked.entra_tenant_id, linked.tenant_id, linked.status) == (E1, "acme", "active")


def test_link_code_refusals_are_one_line_and_a_ttl_past_30_days_a_usage_error(
    tenants: Settings,
) -> None:
    suspended = invoke(tenants, teams, "link-code", "--tenant", "globex")
    assert suspended.exit_code == 1 and suspended.output == (
        "Error: tenant 'globex' is suspended\n")
    too_long = invoke(tenants, teams, "link-code", "--tenant", "acme", "--ttl-hours", "721")
    assert too_long.exit_code == 2 and "1<=x<=720" in too_long.output


def test_links_lists_pending_and_linked_organisations(tenants: Settings) -> None:
    empty = invoke(tenants, teams, "links")
    assert empty.exit_code == 0
    assert empty.output == "no Microsoft 365 organisation has installed the Teams app yet\n"

    asyncio.run(_redeem(tenants, code_of(tenants)))
    asyncio.run(_pending(tenants.database_url, E2))
    result = invoke(tenants, teams, "links")
    assert result.exit_code == 0, result.output
    header, linked, pending = result.output.splitlines()
    assert header.split() == ["ENTRA", "TENANT", "TENANT", "STATUS", "LINKED", "BY", "FIRST",
                              "SEEN", "LINKED", "REVOKED"]
    assert linked.split()[:4] == [E1, "acme", "active", ADMIN]
    assert linked.count("UTC") == 2 and linked.endswith("-")
    assert pending.split()[:4] == [E2, "-", "pending", "-"]
    assert pending.count("UTC") == 1


def test_unlink_revokes_with_the_operator_in_the_tenants_log(tenants: Settings) -> None:
    asyncio.run(_redeem(tenants, code_of(tenants)))
    result = invoke(tenants, teams, "unlink", E1.upper())
    assert result.exit_code == 0, result.output
    assert result.output == f"Entra tenant {E1} unlinked from tenant acme\n"
    [event] = asyncio.run(_unlinked_events(tenants.database_url))
    assert event["platform"] == "teams" and event["entra_tenant_id"] == E1
    assert event["reason"] == "operator" and str(event["by"]).startswith("cli")

    again = invoke(tenants, teams, "unlink", E1)
    assert again.exit_code == 0 and again.output.endswith("was not linked (revoked); "
                                                          "it is revoked now\n")
    assert len(asyncio.run(_unlinked_events(tenants.database_url))) == 1
    unknown = invoke(tenants, teams, "unlink", E2)
    assert unknown.exit_code == 1 and f"no Microsoft 365 organisation {E2}" in unknown.output
    malformed = invoke(tenants, teams, "unlink", "contoso.onmicrosoft.com")
    assert malformed.exit_code == 1 and "GUID" in malformed.output


def test_package_writes_the_app_zip_without_a_database(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    result = CliRunner().invoke(teams, ["package", "--app-id", APP_ID, "--host",
                                        "tenantry.acme.io", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out}\n"
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
    assert manifest["id"] == APP_ID and manifest["validDomains"] == ["tenantry.acme.io"]

    bad = CliRunner().invoke(teams, ["package", "--app-id", APP_ID, "--host",
                                     "https://tenantry.acme.io", "--out",
                                     str(tmp_path / "bad.zip")])
    assert bad.exit_code == 1 and "bare DNS name" in bad.output
    assert not (tmp_path / "bad.zip").exists()
