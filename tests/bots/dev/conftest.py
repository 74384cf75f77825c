"""A running playground per test, and its page served on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bots.dev.page import serve_page
from bots.dev.playground import Playground, open_playground
from core.settings import Settings


@pytest.fixture
async def playground(settings: Settings) -> AsyncIterator[Playground]:
    async with open_playground(settings.model_copy(update={"embedder": "hashing"})) as running:
        yield running


@pytest.fixture
async def page(playground: Playground) -> AsyncIterator[str]:
    """The page's URL (ends in ``/``)."""
    async with serve_page(playground, "127.0.0.1", 0) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
