"""The database wrapper: write transactions queue, read transactions do not, and
``run`` transactions are whole and never stall the event loop."""

from __future__ import annotations

import asyncio
import os
import resource
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.db.engine import Database
from core.db.prepared import Later, Prepared
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


async def test_run_commits_the_whole_transaction_or_none_of_it(db: Database) -> None:
    before = await _plan_count(db)

    def two(conn: Connection) -> str:
        conn.execute(insert(plans).values(**_plan_row("one")))
        conn.execute(insert(plans).values(**_plan_row("two")))
        return "done"

    assert await db.run(two) == "done"
    assert await _plan_count(db) == before + 2

    def half(conn: Connection) -> None:
        conn.execute(insert(plans).values(**_plan_row("three")))
        conn.execute(insert(plans).values(**_plan_row("one")))  # duplicate key

    with pytest.raises(IntegrityError):
        await db.run(half)
    assert await _plan_count(db) == before + 2


async def test_run_waits_for_a_held_lock_without_blocking_the_event_loop(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(plans).values(**_plan_row("held")))
    holding = asyncio.Event()
    ticks = 0

    async def hold_the_lock() -> None:
        async with db.begin() as writer:
            await writer.execute(
                update(plans).where(plans.c.id == "held").values(monthly_tokens=2)
            )
            holding.set()
            await asyncio.sleep(0.3)

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    holder = asyncio.create_task(hold_the_lock())
    ticker = asyncio.create_task(tick())
    await holding.wait()
    before = ticks
    await db.run(
        lambda conn: conn.execute(
            update(plans).where(plans.c.id == "held")
            .values(monthly_tokens=plans.c.monthly_tokens * 10)
        )
    )
    ticker.cancel()
    await holder
    assert ticks - before >= 5, "the event loop stood still while the lock was held"
    async with db.read() as conn:
        tokens = await conn.scalar(select(plans.c.monthly_tokens).where(plans.c.id == "held"))
    assert tokens == 20, "the transaction ran before the lock holder committed"


async def test_run_reconnects_when_its_pooled_connection_died(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("an embedded database has no server to lose the connection")

    def backend_pid(conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    pid = await db.run(backend_pid)
    async with db.begin() as admin:
        await admin.execute(select(func.pg_terminate_backend(pid)))
    assert await db.run(backend_pid) != pid
    assert await db.run(lambda conn: conn.execute(insert(plans).values(**_plan_row("alive"))))
    async with db.read() as conn:
        assert await conn.scalar(select(plans.c.id).where(plans.c.id == "alive")) == "alive"


async def test_a_prepared_statement_converts_its_values_and_raises_sqlalchemy_errors(
    db: Database,
) -> None:
    add = Prepared(insert(plans))
    row = _plan_row("prepared") | {"capabilities": ["knowledge.search"]}
    await db.run(lambda conn: add.execute(conn, row))
    async with db.read() as conn:
        stored = (await conn.execute(select(plans).where(plans.c.id == "prepared"))).one()
    assert stored.capabilities == ["knowledge.search"]  # JSON, through the column's type
    created = row["created_at"]
    assert isinstance(created, datetime)
    assert stored.created_at.replace(tzinfo=None) == created.replace(tzinfo=None)
    with pytest.raises(IntegrityError):
        await db.run(lambda conn: add.execute(conn, row))


@pytest.mark.parametrize("send", ["execute", "queue"])
async def test_a_prepared_statement_on_a_dead_connection_is_retried_on_a_fresh_one(
    db: Database, send: str,
) -> None:
    if db.is_sqlite:
        pytest.skip("an embedded database has no server to lose the connection")
    add = Prepared(insert(plans))

    def backend_pid(conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    pid = await db.run(backend_pid)
    async with db.begin() as admin:
        await admin.execute(select(func.pg_terminate_backend(pid)))
    await asyncio.sleep(0.05)  # the server has closed it by now
    # A queued statement does not wait before COMMIT: the dead connection must be
    # found out before the COMMIT goes, or the write would be reported failed.
    await db.run(lambda conn: getattr(add, send)(conn, _plan_row("after-restart")))
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).where(plans.c.id == "after-restart")) == 1


async def test_a_queued_statement_that_fails_rolls_back_the_whole_transaction(
    db: Database,
) -> None:
    add = Prepared(insert(plans))
    await db.run(lambda conn: add.execute(conn, _plan_row("first")))
    before = await _plan_count(db)

    def queued(conn: Connection) -> None:
        add.queue(conn, _plan_row("second"))
        add.queue(conn, _plan_row("first"))  # duplicate key: its error comes later on PostgreSQL
        add.queue(conn, _plan_row("third"))

    with pytest.raises(IntegrityError):
        await db.run(queued)
    assert await _plan_count(db) == before
    await db.run(lambda conn: add.queue(conn, _plan_row("second")))  # the connection is fine
    assert await _plan_count(db) == before + 1


async def test_a_queued_statement_is_seen_by_the_next_one_and_its_result_read_afterwards(
    db: Database,
) -> None:
    add = Prepared(insert(plans).returning(plans.c.id))

    def write_then_read(conn: Connection) -> tuple[Later, int]:
        added = add.queue(conn, _plan_row("queued"))
        seen = conn.execute(select(func.count()).where(plans.c.id == "queued")).scalar_one()
        return added, int(seen)

    added, seen = await db.run(write_then_read)
    assert seen == 1
    assert tuple(added.row()) == ("queued",)


async def test_a_read_only_run_cannot_write_on_postgresql(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has no read-only transactions; the contract is not to write")
    add = Prepared(insert(plans))
    with pytest.raises(DBAPIError):
        await db.run(lambda conn: add.queue(conn, _plan_row("nope")), readonly=True)
    assert await db.run(
        lambda conn: conn.execute(select(func.count()).select_from(plans)).scalar_one(),
        readonly=True,
    ) == await _plan_count(db)


async def test_a_transaction_works_when_the_process_has_many_descriptors_open(
    database_url: str,
) -> None:
    """A connection's descriptor past 1024, as in a busy web process (``select`` breaks)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit ({hard}) is too low to get past 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    db = Database(database_url)
    try:
        add = Prepared(insert(plans))
        await db.run(lambda conn: add.queue(conn, _plan_row("crowded")))
        assert await _plan_count(db) >= 1
    finally:
        await db.dispose()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_work_that_raises_after_queueing_commits_nothing(db: Database) -> None:
    add = Prepared(insert(plans))
    before = await _plan_count(db)

    def fails(conn: Connection) -> None:
        add.queue(conn, _plan_row("queued-then-failed"))
        raise RuntimeError("the work failed after sending")

    with pytest.raises(RuntimeError, match="after sending"):
        await db.run(fails)
    assert await _plan_count(db) == before
    await db.run(lambda conn: add.queue(conn, _plan_row("queued-then-failed")))
    assert await _plan_count(db) == before + 1
