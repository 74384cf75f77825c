"""The long-lived objects of a Tenantry process, created at startup and closed at exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from core.agent import AgentService
from core.audit import AuditLog, load_signer
from core.builtins import AuditRecent, BudgetStatus, RunStatusCapability
from core.db.engine import Database
from core.db.migrate import upgrade
from core.models import ModelFactory
from core.settings import Settings
from core.tools import CapabilityRegistry


@dataclass
class Runtime:
    """What every command and request handler of one process shares."""

    settings: Settings
    db: Database
    models: ModelFactory
    registry: CapabilityRegistry
    audit: AuditLog
    agent: AgentService


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, migrate: bool | None = None
) -> AsyncIterator[Runtime]:
    """Open the database and clients; the embedded default migrates itself on start.

    Args:
        migrate: Apply migrations first. Defaults to on for SQLite (the embedded
            default) and off for PostgreSQL, where ``tenantry db upgrade`` is a
            deliberate deployment step.
    """
    db = Database(settings.database_url)
    models = ModelFactory(settings)
    try:
        if migrate if migrate is not None else db.is_sqlite:
            await upgrade(db)
        audit = AuditLog(db, load_signer(settings), origin_prefix=settings.audit_origin)
        registry = CapabilityRegistry(
            [BudgetStatus(db), AuditRecent(audit), RunStatusCapability(db)]
        )
        agent = AgentService(db, settings, models, audit, registry)
        yield Runtime(settings=settings, db=db, models=models, registry=registry, audit=audit,
                      agent=agent)
    finally:
        await models.aclose()
        await db.dispose()
