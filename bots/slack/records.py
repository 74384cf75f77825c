"""What the Slack transport remembers: requests and events seen, and where runs are answered.

``ReplayGuard`` keeps, in memory, the signatures of requests verified in the last
minutes, so a captured request sent again is refused before Bolt sees it.

Slack retries an event it thinks was not acknowledged in time (``X-Slack-Retry-Num``)
and sometimes delivers one twice; Bolt does not deduplicate. The first delivery of an
event id wins a row in ``slack_events``; any later one is acknowledged and dropped.
``slack_run_messages`` ties a run to its thread and to the message that carries its
answer, so a resumed run edits that message instead of posting a second one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from slack_sdk.signature import SignatureVerifier
from sqlalchemy import Column, DateTime, String, Table, delete, select

from core.db.engine import Database
from core.db.schema import metadata

SIGNATURE_MAX_AGE_S = 300
"""Slack's (and slack_sdk's) window for a request timestamp, either side of now."""


class ReplayGuard:
    """Checks Slack's request signature, and refuses a signed request seen before.

    A signature only proves who sent a request and that it is under five minutes
    old; a captured request could be sent again within those minutes. Every verified
    ``(timestamp, signature)`` pair is kept until its timestamp leaves the window, so
    the same pair twice is a replay: Slack signs its own retries afresh. The pairs live
    in this process only; at scale another process may accept a replay, which the
    event-id claim (``first_delivery``) then drops before any run starts.
    """

    def __init__(self, signing_secret: str, *, max_age_s: int = SIGNATURE_MAX_AGE_S) -> None:
        self.verifier = SignatureVerifier(signing_secret)
        self.max_age_s = max_age_s
        self._seen: set[tuple[str, str]] = set()
        self._expiry: deque[tuple[float, tuple[str, str]]] = deque()

    def refusal(self, body: str, headers: Mapping[str, str]) -> str | None:
        """Why the request must be refused (``unsigned``, ``bad_signature``, ``replayed``)."""
        timestamp = headers.get("X-Slack-Request-Timestamp") or ""
        signature = headers.get("X-Slack-Signature") or ""
        if not (timestamp.isascii() and timestamp.isdigit() and signature.isascii()):
            return "unsigned"
        if not self.verifier.is_valid(body, timestamp, signature):
            return "bad_signature"
        now = time.time()
        while self._expiry and self._expiry[0][0] < now:
            self._seen.discard(self._expiry.popleft()[1])
        pair = (timestamp, signature)
        if pair in self._seen:
            return "replayed"
        self._seen.add(pair)
        self._expiry.append((int(timestamp) + self.max_age_s + 1, pair))
        return None


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


async def first_delivery(db: Database, event_id: str, team_id: str) -> bool:
    """Claim an event id; ``False`` when it was seen before (a retry or a duplicate).

    The claim is read back through ``RETURNING`` rather than ``rowcount``: psycopg
    reports ``-1`` for an ``INSERT .. ON CONFLICT DO NOTHING``, which would drop every
    first delivery on PostgreSQL.
    """
    async with db.begin() as conn:
        claimed = await conn.scalar(
            db.insert(slack_events)
            .values(event_id=event_id, team_id=team_id, received_at=datetime.now(UTC))
            .on_conflict_do_nothing()
            .returning(slack_events.c.event_id)
        )
    return claimed is not None


async def forget_events_before(db: Database, age: timedelta) -> int:
    """Drop event ids older than ``age``: Slack stops retrying after minutes."""
    async with db.begin() as conn:
        result = await conn.execute(
            delete(slack_events).where(slack_events.c.received_at < datetime.now(UTC) - age)
        )
    return result.rowcount


async def remember_run(db: Database, message: RunMessage) -> None:
    """Record where a run is answered (once; a second call keeps the first)."""
    async with db.begin() as conn:
        await conn.execute(
            db.insert(slack_run_messages)
            .values(
                run_id=message.run_id, tenant_id=message.tenant_id,
                enterprise_id=message.enterprise_id, team_id=message.team_id,
                user_id=message.user_id, channel=message.channel,
                thread_ts=message.thread_ts, answer_ts=message.answer_ts,
                created_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing()
        )


async def run_message(db: Database, tenant_id: str, run_id: str) -> RunMessage | None:
    """Where run ``run_id`` of ``tenant_id`` is answered (a read that never waits for writers)."""
    async with db.read() as conn:
        row = (await conn.execute(
            select(slack_run_messages).where(
                slack_run_messages.c.tenant_id == tenant_id,
                slack_run_messages.c.run_id == run_id,
            )
        )).first()
    if row is None:
        return None
    return RunMessage(
        run_id=row.run_id, tenant_id=row.tenant_id, enterprise_id=row.enterprise_id,
        team_id=row.team_id, user_id=row.user_id, channel=row.channel,
        thread_ts=row.thread_ts, answer_ts=row.answer_ts,
    )


async def purge_tenant(db: Database, tenant_id: str) -> None:
    """Forget where a purged tenant's runs were answered."""
    async with db.begin() as conn:
        await conn.execute(
            delete(slack_run_messages).where(slack_run_messages.c.tenant_id == tenant_id)
        )
