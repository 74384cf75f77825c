"""Purging a tenant: everything it owns goes, except its audit log, which records the purge.

One transaction removes the database-held data (vectors, conversation history, runs,
checkpoints, tool effects, credentials, digests, role grants, the audit salt) and appends
``tenant.purged``; the tenant is left suspended so nothing new starts. Transports
add what they hold (workspace links, installations and their tokens) to the same
transaction through ``also``: core knows no transport. Stores outside the database (a
Pinecone namespace) are purged after the commit. Usage totals stay: they are the
tenant's bill, and hold no content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, update
from sqlalchemy.engine import Connection

from core.api_keys import purge_keys
from core.audit import events
from core.audit.log import AuditLog, shred
from core.authz import purge_policy
from core.credentials import purge_credentials
from core.db.engine import Database
from core.db.schema import (
    checkpoint_segments,
    checkpoints,
    runs,
    tenants,
    tool_effects,
    usage_ledger,
)
from core.digests.records import purge_digests
from core.memory import purge_history
from core.tenants import get_tenant
from core.vectors.base import VectorAdmin
from core.vectors.embedded import purge_chunks

TransportPurge = Callable[[Connection, str], Mapping[str, int] | None]
"""Deletes what one transport holds of a tenant, in the purge's transaction; counts."""


async def purge_tenant(db: Database, audit: AuditLog, vectors: VectorAdmin, tenant_id: str,
                       *, operator: str, also: Sequence[TransportPurge] = ()) -> dict[str, int]:
    """Remove everything ``tenant_id`` owns but its audit log; return what was removed.

    Raises:
        NotFound: no such tenant.
    """
    counts = await db.run(_purge, audit, tenant_id, operator, also)
    await vectors.purge(tenant_id)
    return counts


def _purge(conn: Connection, audit: AuditLog, tenant_id: str, operator: str,
           also: Sequence[TransportPurge]) -> dict[str, int]:
    get_tenant(conn, tenant_id)
    counts = {"chunks": purge_chunks(conn, tenant_id), "turns": purge_history(conn, tenant_id)}
    for transport in also:
        counts.update(transport(conn, tenant_id) or {})
    for name, table in (("checkpoints", checkpoints), ("checkpoint_segments", checkpoint_segments),
                        ("tool_effects", tool_effects), ("runs", runs)):
        counts[name] = conn.execute(delete(table).where(table.c.tenant_id == tenant_id)).rowcount
    counts["credentials"] = purge_credentials(conn, tenant_id)
    counts["digests"] = purge_digests(conn, tenant_id)
    counts["api_keys"] = purge_keys(conn, tenant_id)
    conn.execute(update(usage_ledger).where(usage_ledger.c.tenant_id == tenant_id)
                 .values(response=None))
    purge_policy(conn, tenant_id)
    conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                 .values(status="suspended", updated_at=datetime.now(UTC)))
    shred(conn, tenant_id)
    audit.append(conn, tenant_id, events.TENANT_PURGED, {"operator": operator, **counts})
    return counts
