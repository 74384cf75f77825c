"""Retention: run transcripts and conversation turns are kept for their plan's days.

A sweep, which the server runs (and the clock process will), visits each tenant in a
transaction of its own. For runs that ended before the plan's cutoff it deletes what
holds their content (checkpoints and their segments, recorded tool results, the paid
model responses kept for replay) and blanks the prompt and answer; the run's row
stays with its ids and totals, which are the tenant's bill. Conversation turns older
than the cutoff are deleted. A tenant whose sweep removed anything gets one
``retention.swept`` audit event with the counts; a sweep that finds nothing to remove
writes nothing, so a frequent sweep does not fill the log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from core.audit.events import RETENTION_SWEPT
from core.audit.log import AuditLog
from core.db.engine import Database, reads
from core.db.schema import (
    checkpoint_segments,
    checkpoints,
    plans,
    runs,
    tenants,
    tool_effects,
    usage_ledger,
)
from core.vectors.tables import conversation_turns

ENDED = ("completed", "halted", "failed", "refused")


@reads
def _retention_days(conn: Connection) -> list[tuple[str, int]]:
    query = (select(tenants.c.id, plans.c.retention_days)
             .join(plans, plans.c.id == tenants.c.plan_id).order_by(tenants.c.id))
    return [(str(tenant_id), int(days)) for tenant_id, days in conn.execute(query)]


def sweep_tenant(conn: Connection, audit: AuditLog, tenant_id: str, days: int,
                 now: datetime) -> dict[str, int]:
    """Remove one tenant's content older than ``days``; what was removed, by kind."""
    cutoff = now - timedelta(days=days)
    expired = (select(runs.c.id)
               .where(runs.c.tenant_id == tenant_id, runs.c.status.in_(ENDED),
                      runs.c.updated_at < cutoff, runs.c.prompt != "")
               .scalar_subquery())
    for table in (checkpoint_segments, checkpoints, tool_effects):
        conn.execute(delete(table).where(table.c.tenant_id == tenant_id,
                                         table.c.run_id.in_(expired)))
    conn.execute(update(usage_ledger)
                 .where(usage_ledger.c.tenant_id == tenant_id,
                        usage_ledger.c.run_id.in_(expired), usage_ledger.c.response.is_not(None))
                 .values(response=None))
    blanked = conn.execute(update(runs).where(runs.c.id.in_(expired))
                           .values(prompt="", answer=None)).rowcount
    turns = conn.execute(delete(conversation_turns).where(
        conversation_turns.c.tenant_id == tenant_id,
        conversation_turns.c.created_at < cutoff)).rowcount
    counts = {"runs": int(blanked), "turns": int(turns)}
    if any(counts.values()):
        audit.append(conn, tenant_id, RETENTION_SWEPT,
                     {**counts, "retention_days": days, "cutoff": cutoff.isoformat()})
    return counts


async def sweep(db: Database, audit: AuditLog, now: datetime | None = None
                ) -> dict[str, dict[str, int]]:
    """Apply every tenant's retention; the counts of tenants that had anything removed."""
    now = now or datetime.now(UTC)
    swept = {}
    for tenant_id, days in await db.run(_retention_days):
        counts = await db.run(sweep_tenant, audit, tenant_id, days, now)
        if any(counts.values()):
            swept[tenant_id] = counts
    return swept
