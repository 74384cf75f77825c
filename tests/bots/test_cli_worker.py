"""``tenantry worker``, ``serve`` and ``db upgrade`` on PostgreSQL: the queue and its key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bots.cli import cli
from tests.support.databases import PostgresTemplates


def tenantry(url: str, *args: str, key: str | None = None) -> Result:
    env = {"TENANTRY_JOB_KEY": key, "TENANTRY_LOG_LEVEL": "WARNING"}
    return CliRunner().invoke(cli, ["--database-url", url, *args], env=env)


@pytest.fixture
def pg_url(postgres_templates: PostgresTemplates | None) -> Iterator[str]:
    if postgres_templates is None:
        pytest.skip("needs TENANTRY_TEST_DATABASE_URL")
    url = postgres_templates.fresh()
    yield url
    postgres_templates.drop(url)


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["worker"], ["serve", "--port", "0"]])
def test_serve_and_worker_refuse_to_start_on_postgresql_without_the_job_key(
        pg_url: str, command: list[str]) -> None:
    result = tenantry(pg_url, *command)
    assert result.exit_code == 1
    assert "TENANTRY_JOB_KEY" in result.output


def test_a_worker_refuses_sqlite_where_serve_runs_the_runs_itself(tenantry_sqlite: str) -> None:
    result = tenantry(tenantry_sqlite, "worker", key="k")
    assert result.exit_code == 1 and "PostgreSQL" in result.output


@pytest.fixture
def tenantry_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


@pytest.mark.postgres
def test_db_upgrade_installs_the_queue_once(postgres_templates: PostgresTemplates | None) -> None:
    if postgres_templates is None:
        pytest.skip("needs TENANTRY_TEST_DATABASE_URL")
    url = postgres_templates.empty()
    try:
        first = tenantry(url, "db", "upgrade")
        second = tenantry(url, "db", "upgrade")
    finally:
        postgres_templates.drop(url)
    assert first.exit_code == 0 and "job queue installed" in first.output, first.output
    assert second.exit_code == 0 and "job queue already installed" in second.output
