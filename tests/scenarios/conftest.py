"""The scenario fixtures: a running app per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from core.logs import scrub_library_logs
from core.settings import Settings
from tests.scenarios.harness import Scenario, open_scenario


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
