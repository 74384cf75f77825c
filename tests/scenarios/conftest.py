"""The scenario fixtures: a running app per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bots.settings import ServerSettings
from core.logs import scrub_library_logs
from core.settings import Settings
from tests.conftest import JOB_KEY
from tests.scenarios.harness import Scenario, open_scenario
from tests.support.databases import PostgresTemplates
from tests.support.workers import Workers


@pytest.fixture
async def scenario(settings: Settings) -> AsyncIterator[Scenario]:
    async with open_scenario(settings) as running:
        yield running


@pytest.fixture
async def teams(settings: Settings) -> AsyncIterator[Scenario]:
    """A running app that serves Slack and Teams, Microsoft played by local stand-ins."""
    async with open_scenario(settings, teams=True) as running:
        yield running


@pytest.fixture
def debug_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Everything logged at DEBUG, through the root handlers Tenantry scrubs."""
    sink = io.StringIO()
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.StreamHandler(sink)])
    level = root.level
    root.setLevel(logging.DEBUG)  # setLevel, not the attribute: it clears loggers' caches
    scrub_library_logs()
    yield sink
    root.setLevel(level)


WORKERS_BOUND = 2
"""A tenant's places across the deployment (``runs_per_tenant``) in ``web``."""


@pytest.fixture
def pg_settings(postgres_templates: PostgresTemplates | None,
                tmp_path: Path) -> Iterator[Settings]:
    if postgres_templates is None:
        pytest.skip("the workers need PostgreSQL: set TENANTRY_TEST_DATABASE_URL")
    url = postgres_templates.fresh()
    yield Settings(database_url=url, data_dir=tmp_path / "data", model="sandbox",
                   embedder="hashing", job_key=SecretStr(JOB_KEY))
    postgres_templates.drop(url)


@pytest.fixture
async def web(pg_settings: Settings) -> AsyncIterator[Scenario]:
    server = ServerSettings(runs_in="auto", runs_per_tenant=WORKERS_BOUND)
    async with open_scenario(pg_settings, server=server) as scenario:
        yield scenario


@pytest.fixture
async def workers(web: Scenario, tmp_path: Path) -> AsyncIterator[Workers]:
    started = Workers(web.settings, tmp_path / "effects.txt", web.slack)
    try:
        yield started
    finally:
        await started.stop_all()
