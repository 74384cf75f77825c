"""The command line as an operator uses it: in a scratch folder, on its own SQLite file;
or called group by group on the test database, with two tenants to act on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.db.engine import Database
from core.settings import Settings
from core.tenants import set_status
from tests.support.tenancy import plan, tenant_on


@pytest.fixture
def tenantry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TENANTRY_DATABASE_URL", f"sqlite:///{tmp_path / 't.db'}")
    monkeypatch.setenv("TENANTRY_LOG_LEVEL", "WARNING")
    yield CliRunner()


async def _two_tenants(url: str) -> None:
    db = Database(url)
    try:
        await tenant_on(db, "acme", plan())
        await tenant_on(db, "globex", plan())
        await db.run(set_status, "globex", "suspended")
    finally:
        await db.dispose()


@pytest.fixture
def tenants(settings: Settings) -> Settings:
    """The test database's settings, with tenant ``acme`` active and ``globex`` suspended."""
    asyncio.run(_two_tenants(settings.database_url))
    return settings
