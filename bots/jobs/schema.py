"""procrastinate's own tables and functions, installed beside the app's schema."""

from __future__ import annotations

from procrastinate import App, PsycopgConnector

from bots.jobs.queue import libpq_url


async def install_queue_schema(database_url: str) -> bool:
    """Apply procrastinate's schema through its schema manager unless it is there;
    ``True`` if it was applied now."""
    app = App(connector=PsycopgConnector(conninfo=libpq_url(database_url),
                                         min_size=1, max_size=1))
    async with app.open_async():
        row = await app.connector.execute_query_one_async(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present")
        if row["present"]:
            return False
        await app.schema_manager.apply_schema_async()
        return True
