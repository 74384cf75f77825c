"""Purging a tenant: everything it owns goes, except its audit log, which records the purge.

One transaction removes the database-held data (vectors, conversation history, runs,
checkpoints, tool effects, credentials, role grants, the audit salt) and appends
``tenant.purged``; the tenant is left suspended so nothing new starts. Stores outside
the database (a Pinecone namespace) are purged after the commit. Usage totals stay:
they are the tenant's bill, and hold no content.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, update

from core import audit as events
from core.audit import AuditLog
from core.authz import purge_tenant as purge_grants
from core.credentials import tenant_credentials
from core.db.engine import Database
from core.db.schema import (
    checkpoint_segments,
    checkpoints,
    runs,
    tenants,
    tool_effects,
    usage_ledger,
)
from core.memory import purge_tenant as purge_history
from core.tenants import get_tenant
from core.vectors import VectorStore
from core.vectors.embedded import purge_tenant as purge_embedded


async def purge_tenant(db: Database, audit: AuditLog, store: VectorStore, tenant_id: str,
                       *, operator: str) -> dict[str, int]:
    """Remove everything ``tenant_id`` owns but its audit log; return what was removed.

    Raises:
        NotFound: no such tenant.
    """
    await get_tenant(db, tenant_id)
    counts: dict[str, int] = {}
    async with db.begin() as conn:
        counts["chunks"] = await purge_embedded(conn, tenant_id)
        counts["turns"] = await purge_history(conn, tenant_id)
        for name, table in (("checkpoints", checkpoints),
                            ("checkpoint_segments", checkpoint_segments),
                            ("tool_effects", tool_effects),
                            ("runs", runs), ("credentials", tenant_credentials)):
            result = await conn.execute(delete(table).where(table.c.tenant_id == tenant_id))
            counts[name] = result.rowcount
        await conn.execute(update(usage_ledger).where(usage_ledger.c.tenant_id == tenant_id)
                           .values(response=None))
        await purge_grants(conn, tenant_id)
        await conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                           .values(status="suspended", updated_at=datetime.now(UTC)))
        await audit.shred(conn, tenant_id)
        await audit.append(conn, tenant_id, events.TENANT_PURGED,
                           {"operator": operator, **counts})
    await store.purge(tenant_id)
    return counts
