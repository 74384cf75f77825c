from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bots.cli_api_keys import api_keys_group
from core.api_keys import verify
from core.authz import roles_of
from core.db.engine import Database
from core.db.migrate import upgrade
from core.settings import Settings
from tests.support.databases import run_once
from tests.support.tenancy import plan, tenant_on


async def _prepare(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
        for tenant_id in ("acme", "globex"):
            await tenant_on(db, tenant_id, plan())
    finally:
        await db.dispose()



@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    asyncio.run(_prepare(url))
    return Settings(database_url=url, data_dir=tmp_path / "data", model="sandbox")


def invoke(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(api_keys_group, list(args), obj=settings)


def test_a_key_is_printed_once_listed_by_prefix_and_revoked(settings: Settings) -> None:
    created = invoke(settings, "create", "--tenant", "acme", "--principal", "svc:billing",
                     "--role", "member", "--expires", "90d")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("tnt_") and "shown only this once" in created.stderr
    presented = run_once(settings.database_url, verify, key, now=datetime.now(UTC))
    assert presented.principal_id == "svc:billing"
    listed = invoke(settings, "list", "--tenant", "acme", "--json")
    [entry] = json.loads(listed.stdout)
    assert key.startswith(entry["prefix"]) and key not in listed.stdout
    assert entry["principal"] == "svc:billing" and entry["expires_at"] is not None
    assert entry["revoked_at"] is None
    assert run_once(settings.database_url, roles_of, "acme", "svc:billing") == \
        ["member"]
    assert json.loads(invoke(settings, "list", "--tenant", "globex", "--json").stdout) == []

    other = invoke(settings, "revoke", "--tenant", "globex", entry["prefix"])
    assert other.exit_code == 1 and "has no API key" in other.output
    revoked = invoke(settings, "revoke", "--tenant", "acme", entry["prefix"])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    [entry] = json.loads(invoke(settings, "list", "--tenant", "acme", "--json").stdout)
    assert entry["revoked_at"] is not None


@pytest.mark.parametrize(("args", "message"), [
    (("--principal", "svc:x", "--expires", "soon"), "is not a duration like 90d"),
    (("--principal", "has space"), "principal id must be"),
    (("--principal", "x" * 201), "201"),
    (("--principal", "svc:x", "--role", "emperor"), "'emperor' is not one of"),
])
def test_bad_values_are_one_line(settings: Settings, args: tuple[str, ...],
                                 message: str) -> None:
    result = invoke(settings, "create", "--tenant", "acme", *args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output
