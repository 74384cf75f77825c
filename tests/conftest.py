"""Test-wide fixtures: no real network, and a fresh database per test on both backends."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.db.engine import Database
from core.settings import Settings
from tests.support.databases import PostgresTemplates, SqliteTemplates, pg_server_url

JOB_KEY = "test-job-key"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class RealNetworkAttempt(AssertionError):
    """Raised when code under test tries to reach anything but this machine."""


def _is_local(address: Any) -> bool:
    if isinstance(address, str | bytes):
        return True  # a Unix socket path
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection to a non-loopback address: tests must use the local fakes."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if not _is_local(address):
            raise RealNetworkAttempt(f"test tried to reach the real network: {address!r}")
        real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if not _is_local(address):
            raise RealNetworkAttempt(f"test tried to reach the real network: {address!r}")
        return real_connect_ex(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local((name, 0)):
            raise RealNetworkAttempt(f"test tried to resolve a real host: {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    for name in ("ANTHROPIC_API_KEY", "TENANTRY_ANTHROPIC_API_KEY", "PINECONE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    # An app started with the environment's settings serves MCP on a free port, never
    # on one that another test (or a running server) holds.
    monkeypatch.setenv("TENANTRY_MCP_PORT", "0")


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def postgres_templates() -> Iterator[PostgresTemplates | None]:
    url = pg_server_url()
    if url is None:
        yield None
        return
    templates = PostgresTemplates(url)
    yield templates
    templates.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest,
    sqlite_templates: SqliteTemplates,
    postgres_templates: PostgresTemplates | None,
) -> Iterator[str]:
    """A fresh, migrated database URL: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_templates.fresh()
        return
    if postgres_templates is None:
        pytest.skip("PostgreSQL tests need TENANTRY_TEST_DATABASE_URL")
    url = postgres_templates.fresh()
    yield url
    postgres_templates.drop(url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data", model="sandbox",
                    job_key=SecretStr(JOB_KEY))


@pytest.fixture
def shared_dir() -> Path:
    """The shared test data folder beside the project."""
    if not SHARED.is_dir():
        pytest.skip(f"shared test data not found at {SHARED}")
    return SHARED
