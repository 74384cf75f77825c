"""What a deployment does on its own: sign unsigned audit tails.

Every run that appended events signs its tenant's head when it ends. Events written
outside a run (an administrative action, a run that crashed before it ended) are
signed by ``sign_unsigned``, which the server calls every minute, so the unsigned
tail of a log is at most the events of runs still in flight.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from core.audit.events import AuditError
from core.audit.log import AuditLog
from core.audit.tables import audit_checkpoints, audit_heads
from core.db.engine import reads
from core.logs import log


@reads
def unsigned_tenants(conn: Connection) -> list[str]:
    """Tenants whose log has events after its latest signed checkpoint."""
    signed = (select(audit_checkpoints.c.tenant_id,
                     func.max(audit_checkpoints.c.size).label("size"))
              .group_by(audit_checkpoints.c.tenant_id).subquery())
    query = (select(audit_heads.c.tenant_id)
             .outerjoin(signed, signed.c.tenant_id == audit_heads.c.tenant_id)
             .where(audit_heads.c.size > func.coalesce(signed.c.size, 0))
             .order_by(audit_heads.c.tenant_id))
    return list(conn.scalars(query))


async def sign_unsigned(audit: AuditLog) -> list[str]:
    """Sign the head of every log with unsigned events; the tenants signed.

    A log that cannot be signed (its events no longer match its head) is logged as an
    error and left for a person: signing over it would vouch for the change.
    """
    signed = []
    for tenant_id in await audit.db.run(unsigned_tenants):
        try:
            await audit.sign_checkpoint(tenant_id)
        except AuditError as exc:
            log.error("audit log not signed", tenant_id=tenant_id, error=str(exc))
            continue
        signed.append(tenant_id)
    return signed
