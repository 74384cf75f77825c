"""The database wrapper: write transactions queue, read transactions do not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError

from core.db.engine import Database
from core.db.schema import plans


def _plan_row(plan_id: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "id": plan_id, "monthly_tokens": 1, "monthly_cost_microcents": 1,
        "monthly_tool_calls": 1, "run_tokens": 1, "run_tool_calls": 1, "run_walltime_ms": 1,
        "run_cost_microcents": 1, "capabilities": [], "created_at": now, "updated_at": now,
    }


async def _plan_count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(plans))).scalar_one())


async def test_a_read_sees_committed_rows_while_a_writer_holds_its_transaction(
    db: Database,
) -> None:
    before = await _plan_count(db)
    async with db.begin() as writer:
        await writer.execute(insert(plans).values(**_plan_row("held")))
        # A reader does not wait for the writer's lock, and does not see its rows yet.
        assert await asyncio.wait_for(_plan_count(db), timeout=5) == before
    assert await _plan_count(db) == before + 1


async def test_a_read_transaction_refuses_writes_on_postgresql(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has no read-only transactions; the contract is not to write")
    with pytest.raises(DBAPIError):
        async with db.read() as conn:
            await conn.execute(insert(plans).values(**_plan_row("nope")))
