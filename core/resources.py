"""Who owns a resource a tool touches, so authorisation can deny other tenants' ids.

A binding that reaches a stored row by id declares ``resource_kind`` and
``resource_arg``; before it runs, the guard asks the locator for that row's tenant.
A row that does not exist is refused like another tenant's row, so an id never
reveals whether it exists elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from core.db.engine import Database, reads
from core.db.schema import runs

Locate = Callable[[str], Awaitable[str | None]]


class ResourceLocator:
    """Maps a resource kind to a lookup of its owning tenant."""

    def __init__(self, db: Database) -> None:
        self._kinds: dict[str, Locate] = {"run": self._run_owner}
        self.db = db

    def register(self, kind: str, locate: Locate) -> None:
        """Teach the locator a new kind of resource (plugins add their own)."""
        self._kinds[kind] = locate

    async def owner(self, kind: str, resource_id: str) -> str | None:
        """The tenant owning ``resource_id``, or ``None`` if unknown."""
        locate = self._kinds.get(kind)
        return None if locate is None else await locate(resource_id)

    async def _run_owner(self, run_id: str) -> str | None:
        return await self.db.run(_run_owner, run_id)


@reads
def _run_owner(conn: Connection, run_id: str) -> str | None:
    return conn.scalar(select(runs.c.tenant_id).where(runs.c.id == run_id))
