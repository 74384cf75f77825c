"""Migration 0009: checkpoints stored in segments, and back, without losing history."""

from __future__ import annotations

import hashlib

from alembic import command
from sqlalchemy import select

from core.checkpoints import load_checkpoint
from core.db.engine import Database
from core.db.migrate import alembic_config, upgrade
from core.db.schema import checkpoints
from core.settings import Settings
from tests.core.test_agent import completed_with_checkpoint
from tests.support.databases import fetch_one


async def test_a_downgrade_folds_the_segments_back_and_an_upgrade_reads_the_result(
        db: Database, settings: Settings) -> None:
    svc, outcome, before = await completed_with_checkpoint(db, settings)
    grant = await svc.open(tenant_id="acme", principal_id="alice", run_id=outcome.run_id)

    await db.run(lambda conn: command.downgrade(alembic_config(conn), "0008"))
    old = await fetch_one(db, select(checkpoints.c.messages, checkpoints.c.digest)
                          .where(checkpoints.c.run_id == outcome.run_id))
    assert old.messages.encode() == before.messages
    assert old.digest == hashlib.sha256(old.messages.encode()).hexdigest()

    await upgrade(db)
    after = await db.run(load_checkpoint, grant.ctx, outcome.run_id)
    assert after is not None
    assert (after.messages, after.segments, after.settled) == (before.messages, 0, 0)
