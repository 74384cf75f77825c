"""What the Slack transport remembers: events seen, and where runs are answered.

Slack retries an event it thinks was not acknowledged in time (``X-Slack-Retry-Num``)
and sometimes delivers one twice, and a captured request still verifies when sent again
within its signature's five minutes; Bolt deduplicates neither. The first delivery of an
event id (for a slash command, its trigger id) from an installation wins a row in
``slack_events``; any later one is acknowledged and dropped, before any run starts.
Event ids are unique within an installation only, so the claim is the pair: the same id
from two workspaces is two events.

``slack_run_messages`` ties a run to its thread and to the message that carries its
answer, so a resumed run edits that message instead of posting a second one.

Every function runs inside the caller's transaction (``Database.run``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, String, Table, delete, select
from sqlalchemy.engine import Connection

from core.db.engine import dialect_insert, reads
from core.db.schema import metadata

slack_events = Table(
    "slack_events",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("team_id", String(32), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

slack_run_messages = Table(
    "slack_run_messages",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("enterprise_id", String(32), nullable=False),
    Column("team_id", String(32), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("thread_ts", String(32)),
    Column("answer_ts", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class RunMessage:
    """Where a run's answer goes."""

    run_id: str
    tenant_id: str
    enterprise_id: str
    team_id: str
    user_id: str
    channel: str
    thread_ts: str | None
    answer_ts: str | None


def first_delivery(conn: Connection, event_id: str, team_id: str) -> bool:
    """Claim an event id of an installation (its team id, or its org's enterprise id for
    an org-wide install); ``False`` when that installation's event was seen before (a
    retry or a duplicate).

    The row's key is ``{team_id}:{event_id}``, which keeps the table's shape (and every
    database's migration) as it was; a claim made before the key took the installation
    in is at most a day old and Slack retries within minutes.

    The claim is read back through ``RETURNING`` rather than ``rowcount``: psycopg
    reports ``-1`` for an ``INSERT .. ON CONFLICT DO NOTHING``, which would drop every
    first delivery on PostgreSQL.
    """
    claimed = conn.scalar(
        dialect_insert(conn, slack_events)
        .values(event_id=f"{team_id}:{event_id}"[:200], team_id=team_id,
                received_at=datetime.now(UTC))
        .on_conflict_do_nothing()
        .returning(slack_events.c.event_id)
    )
    return claimed is not None


def forget_events_before(conn: Connection, age: timedelta) -> int:
    """Drop event ids older than ``age``: Slack stops retrying after minutes."""
    return conn.execute(
        delete(slack_events).where(slack_events.c.received_at < datetime.now(UTC) - age)
    ).rowcount


def remember_run(conn: Connection, message: RunMessage) -> None:
    """Record where a run is answered (once; a second call keeps the first)."""
    conn.execute(
        dialect_insert(conn, slack_run_messages)
        .values(
            run_id=message.run_id, tenant_id=message.tenant_id,
            enterprise_id=message.enterprise_id, team_id=message.team_id,
            user_id=message.user_id, channel=message.channel,
            thread_ts=message.thread_ts, answer_ts=message.answer_ts,
            created_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing()
    )


@reads
def run_message(conn: Connection, tenant_id: str, run_id: str) -> RunMessage | None:
    """Where run ``run_id`` of ``tenant_id`` is answered (a read that never waits for writers)."""
    row = conn.execute(
        select(slack_run_messages).where(
            slack_run_messages.c.tenant_id == tenant_id,
            slack_run_messages.c.run_id == run_id,
        )
    ).first()
    if row is None:
        return None
    return RunMessage(
        run_id=row.run_id, tenant_id=row.tenant_id, enterprise_id=row.enterprise_id,
        team_id=row.team_id, user_id=row.user_id, channel=row.channel,
        thread_ts=row.thread_ts, answer_ts=row.answer_ts,
    )


def purge_tenant(conn: Connection, tenant_id: str) -> dict[str, int]:
    """Forget where a purged tenant's runs were answered."""
    return {"slack_messages": int(conn.execute(delete(slack_run_messages).where(
        slack_run_messages.c.tenant_id == tenant_id)).rowcount)}
