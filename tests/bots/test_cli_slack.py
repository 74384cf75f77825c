from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import click
from click.testing import CliRunner, Result

from bots.cli_slack import slack
from bots.settings import ServerSettings
from core.crypto import Keyring
from core.db.engine import Database
from core.settings import Settings
from installs.links import link, redeem, revoke


def invoke(settings: Settings, group: click.Group, *args: str) -> Result:
    return CliRunner().invoke(group, list(args), obj=settings)


async def _redeem(settings: Settings, token: str) -> str:
    db = Database(settings.database_url)
    try:
        return await db.run(redeem, Keyring.from_settings(settings), token)
    finally:
        await db.dispose()


async def _links(url: str) -> None:
    db = Database(url)
    try:
        await db.run(link, "E1", None, "acme", "W1")
        await db.run(link, None, "T2", "acme", "U2")
        await db.run(revoke, None, "T2")
    finally:
        await db.dispose()


def test_install_link_prints_a_url_the_server_redeems_once(tenants: Settings) -> None:
    result = invoke(tenants, slack, "install-link", "--tenant", "acme",
                    "--base-url", "https://tenantry.example.com", "--ttl-hours", "2")
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://tenantry.example.com/slack/install")
    [token] = parse_qs(parts.query)["link"]
    assert asyncio.run(_redeem(tenants, token)) == "acme"


def test_install_link_defaults_to_the_public_url(tenants: Settings) -> None:
    result = invoke(tenants, slack, "install-link", "--tenant", "acme")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{ServerSettings().public_url}/slack/install?link=")


def test_install_link_refuses_unknown_and_suspended_tenants_and_bad_ttls(
    tenants: Settings,
) -> None:
    unknown = invoke(tenants, slack, "install-link", "--tenant", "initech")
    assert unknown.exit_code == 1 and "no tenant 'initech'" in unknown.output
    suspended = invoke(tenants, slack, "install-link", "--tenant", "globex")
    assert suspended.exit_code == 1 and "suspended" in suspended.output
    too_long = invoke(tenants, slack, "install-link", "--tenant", "acme", "--ttl-hours", "9999")
    assert too_long.exit_code == 2


def test_links_lists_org_and_workspace_links_with_status(tenants: Settings) -> None:
    empty = invoke(tenants, slack, "links")
    assert empty.exit_code == 0 and empty.output == "no Slack workspace is linked yet\n"

    asyncio.run(_links(tenants.database_url))
    result = invoke(tenants, slack, "links")
    assert result.exit_code == 0, result.output
    header, workspace, org = result.output.splitlines()
    assert header.split() == ["ENTERPRISE", "TEAM", "TENANT", "STATUS", "LINKED", "REVOKED",
                              "INSTALLER"]
    assert workspace.split()[:4] == ["-", "T2", "acme", "revoked"]
    assert workspace.split()[-1] == "U2" and workspace.count("UTC") == 2
    assert org.split()[:4] == ["E1", "(org-wide)", "acme", "active"]
    assert org.split()[-2:] == ["-", "W1"]
