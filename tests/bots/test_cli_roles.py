from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bots.cli_roles import roles
from core.authz import roles_of, seed_policy
from core.db.engine import Database
from core.db.migrate import upgrade
from core.settings import Settings
from tests.support.databases import run_once
from tests.support.tenancy import plan, tenant_on


async def _prepare(url: str, *tenant_ids: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
        for tenant_id in tenant_ids:
            await tenant_on(db, tenant_id, plan())
            await db.run(seed_policy, tenant_id)
    finally:
        await db.dispose()



@pytest.fixture
def cli_settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    asyncio.run(_prepare(url, "acme", "beta"))
    return Settings(database_url=url, data_dir=tmp_path / "data", model="sandbox")


def invoke(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(roles, list(args), obj=settings)


def test_grant_list_revoke(cli_settings: Settings) -> None:
    result = invoke(cli_settings, "grant", "--tenant", "acme", "slack:T1:U1", "admin")
    assert result.exit_code == 0, result.output
    assert result.stdout == "slack:T1:U1 now has role admin in tenant acme\n"
    assert "already had" in invoke(
        cli_settings, "grant", "--tenant", "acme", "slack:T1:U1", "admin"
    ).stdout
    invoke(cli_settings, "grant", "--tenant", "acme", "slack:T1:U0", "guest")
    invoke(cli_settings, "grant", "--tenant", "beta", "slack:T1:U1", "guest")

    listed = invoke(cli_settings, "list", "--tenant", "acme")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == ["slack:T1:U0 guest", "slack:T1:U1 admin"]

    revoked = invoke(cli_settings, "revoke", "--tenant", "acme", "slack:T1:U1", "admin")
    assert revoked.stdout == "slack:T1:U1 no longer has role admin in tenant acme\n"
    again = invoke(cli_settings, "revoke", "--tenant", "acme", "slack:T1:U1", "admin")
    assert again.exit_code == 0 and "did not have" in again.stdout
    url = cli_settings.database_url
    assert run_once(url, roles_of, "acme", "slack:T1:U1") == []
    assert run_once(url, roles_of, "beta", "slack:T1:U1") == ["guest"]


def test_an_empty_tenant_lists_nothing_on_stdout(cli_settings: Settings) -> None:
    result = invoke(cli_settings, "list", "--tenant", "beta")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "tenant beta has no role grants" in result.stderr


def test_mistakes_are_one_clear_line(cli_settings: Settings) -> None:
    unknown_role = invoke(cli_settings, "grant", "--tenant", "acme", "u1", "superuser")
    assert unknown_role.exit_code == 2
    assert "'superuser' is not one of 'owner', 'admin', 'member', 'guest'" in unknown_role.output
    ghost = invoke(cli_settings, "grant", "--tenant", "ghost", "u1", "member")
    assert ghost.exit_code == 1
    assert "no tenant 'ghost'" in ghost.output
    bad = invoke(cli_settings, "grant", "--tenant", "acme", "role:owner", "member")
    assert bad.exit_code == 1 and "principal id" in bad.output
    missing = invoke(cli_settings, "list")
    assert missing.exit_code == 2 and "--tenant" in missing.output


def test_help_explains_every_command(cli_settings: Settings) -> None:
    top = invoke(cli_settings, "--help")
    assert top.exit_code == 0
    for text in ("grant", "revoke", "list", "member: *", "guest: knowledge.search"):
        assert text in top.output
    for command in ("grant", "revoke", "list"):
        result = invoke(cli_settings, command, "--help")
        assert result.exit_code == 0
        assert "--tenant" in result.output
    assert "PRINCIPAL" in invoke(cli_settings, "grant", "--help").output
    assert "next run" in invoke(cli_settings, "revoke", "--help").output


def test_commands_need_the_root_settings() -> None:
    result = CliRunner().invoke(roles, ["list", "--tenant", "acme"])
    assert result.exit_code != 0
    assert "runs under `tenantry`" in result.output
