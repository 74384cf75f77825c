"""The scenario fixture: a running app per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.settings import Settings
from tests.scenarios.harness import Scenario, open_scenario


@pytest.fixture
async def scenario(settings: Settings) -> AsyncIterator[Scenario]:
    async with open_scenario(settings) as running:
        yield running
