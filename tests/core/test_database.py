"""The database's one way in: ``run`` transactions are whole, reads never wait for
writers, and a transaction waiting for a lock never stalls the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.db.engine import Database, normalise_url, reads
from core.db.schema import plans
from core.errors import ConfigurationError


def _plan_row(plan_id: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "id": plan_id, "monthly_tokens": 1, "monthly_cost_microcents": 1,
        "monthly_tool_calls": 1, "run_tokens": 1, "run_tool_calls": 1, "run_walltime_ms": 1,
        "run_cost_microcents": 1, "capabilities": [], "created_at": now, "updated_at": now,
    }


@reads
def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(plans)).scalar_one())


def _insert(conn: Connection, plan_id: str) -> None:
    conn.execute(insert(plans).values(**_plan_row(plan_id)))


class HeldTransaction:
    """A write transaction kept open in its worker thread until ``release``."""

    def __init__(self, db: Database, work: Callable[[Connection], object]) -> None:
        self.started = asyncio.Event()
        self._go = threading.Event()
        loop = asyncio.get_running_loop()

        def held(conn: Connection) -> None:
            work(conn)
            loop.call_soon_threadsafe(self.started.set)
            self._go.wait(timeout=30)

        self.task = asyncio.create_task(db.run(held))

    async def wait_started(self) -> None:
        await self.started.wait()

    async def release(self) -> None:
        self._go.set()
        await self.task


async def test_a_read_sees_committed_rows_while_a_writer_holds_its_transaction(
    db: Database,
) -> None:
    before = await db.run(_count)
    writer = HeldTransaction(db, lambda conn: _insert(conn, "held"))
    await writer.wait_started()
    # A reader does not wait for the writer's lock, and does not see its rows yet.
    assert await asyncio.wait_for(db.run(_count), timeout=5) == before
    await writer.release()
    assert await db.run(_count) == before + 1


async def test_a_read_refuses_writes_on_postgresql(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has no read-only transactions; the contract is not to write")

    @reads
    def sneaky(conn: Connection) -> None:
        _insert(conn, "nope")

    with pytest.raises(DBAPIError):
        await db.run(sneaky)
    assert await db.run(_count) == 0


async def test_run_commits_the_whole_transaction_or_none_of_it(db: Database) -> None:
    before = await db.run(_count)

    def two(conn: Connection) -> str:
        _insert(conn, "one")
        _insert(conn, "two")
        return "done"

    assert await db.run(two) == "done"
    assert await db.run(_count) == before + 2

    def half(conn: Connection) -> None:
        _insert(conn, "three")
        _insert(conn, "one")  # duplicate key

    with pytest.raises(IntegrityError):
        await db.run(half)
    assert await db.run(_count) == before + 2

    def fails(conn: Connection) -> None:
        _insert(conn, "four")
        raise RuntimeError("the work failed after writing")

    with pytest.raises(RuntimeError, match="after writing"):
        await db.run(fails)
    assert await db.run(_count) == before + 2


async def test_a_failed_statement_does_not_show_its_parameters(db: Database) -> None:
    """A prompt or a token in a failed INSERT must not travel on in the error."""
    row = _plan_row("taken") | {"capabilities": ["a prompt someone wrote"]}
    await db.run(_insert, "taken")
    with pytest.raises(IntegrityError) as failed:
        await db.run(lambda conn: conn.execute(insert(plans).values(**row)))
    assert "a prompt someone wrote" not in str(failed.value)


async def test_run_waits_for_a_held_lock_without_blocking_the_event_loop(db: Database) -> None:
    await db.run(_insert, "held")
    writer = HeldTransaction(db, lambda conn: conn.execute(
        update(plans).where(plans.c.id == "held").values(monthly_tokens=2)))
    await writer.wait_started()
    turned = asyncio.Event()

    async def tick() -> None:
        for _ in range(5):
            await asyncio.sleep(0.001)
        turned.set()

    waiting = asyncio.create_task(db.run(lambda conn: conn.execute(
        update(plans).where(plans.c.id == "held")
        .values(monthly_tokens=plans.c.monthly_tokens * 10))))
    await asyncio.wait_for(tick(), timeout=5)  # the loop turns while the writer waits
    assert turned.is_set() and not waiting.done(), "the second writer did not wait"
    await writer.release()
    await waiting
    tokens = await db.run(lambda conn: conn.scalar(
        select(plans.c.monthly_tokens).where(plans.c.id == "held")))
    assert tokens == 20, "the transaction ran before the lock holder committed"


async def test_run_reconnects_when_its_pooled_connection_died(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("an embedded database has no server to lose the connection")

    def backend_pid(conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    pid = await db.run(backend_pid)
    admin = Database(db.url)
    try:
        await admin.run(lambda conn: conn.execute(select(func.pg_terminate_backend(pid))))
    finally:
        await admin.dispose()
    await db.run(_insert, "alive")
    assert await db.run(lambda conn: conn.scalar(
        select(plans.c.id).where(plans.c.id == "alive"))) == "alive"


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///tenantry.db", "sqlite+pysqlite:///tenantry.db"),
    ("sqlite+aiosqlite:///tenantry.db", "sqlite+pysqlite:///tenantry.db"),
    ("postgres://u@db/tenantry", "postgresql+psycopg://u@db/tenantry"),
    ("postgresql://u@db/tenantry", "postgresql+psycopg://u@db/tenantry"),
    ("postgresql+psycopg://u@db/tenantry", "postgresql+psycopg://u@db/tenantry"),
])
def test_a_url_gets_the_synchronous_driver_of_its_database(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


async def test_an_older_aiosqlite_url_opens_its_file_with_the_synchronous_driver(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'older.db'}")
    try:
        assert db.url == f"sqlite+pysqlite:///{tmp_path / 'older.db'}"
        assert await db.run(lambda conn: conn.exec_driver_sql("SELECT 1").scalar_one()) == 1
    finally:
        await db.dispose()
    assert (tmp_path / "older.db").is_file()


def test_other_databases_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="'mysql'"):
        normalise_url("mysql://u@db/tenantry")
