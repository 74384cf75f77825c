"""The scenario fixtures: a running app per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
