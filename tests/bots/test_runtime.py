"""The runtime wires settings into the services it builds."""

from __future__ import annotations

from pathlib import Path

from bots.runtime import open_vectors
from core.db.engine import Database
from core.settings import Settings
from core.vectors.embedded import EmbeddedVectorStore


async def test_the_embedded_store_gets_the_configured_cache_bound(
        database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    try:
        for megabytes in (0, 3):
            settings = Settings(database_url=database_url, data_dir=tmp_path, model="sandbox",
                                embedder="hashing", vector_cache_mb=megabytes)
            async with open_vectors(settings, db) as (store, _admin):
                assert isinstance(store, EmbeddedVectorStore)
                assert store.cache.stats().max_bytes == megabytes * 2**20
    finally:
        await db.dispose()
