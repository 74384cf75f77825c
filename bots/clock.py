"""The digest clock: APScheduler 3 firing each active digest on its cron, through one callback.

``DigestClock`` keeps one ``CronTrigger`` job per active digest of an active tenant, in
the tenant's zone, with ``coalesce`` and a ``misfire_grace_time`` of the digests'
grace. Every ``reload_s`` it reads a cheap version marker (how many digests, their
latest change, the tenants' latest change) and reloads the jobs only when it moved.
The clock decides *when*, and does nothing else: each firing goes to ``fire(tenant_id,
digest_id, fire_time)``, which ``tenantry serve`` points at its executor and
``tenantry clock`` at ``fire_digest`` (a queue would enqueue there).

APScheduler 3 does not tell a job which scheduled time it runs for, so the job asks
the trigger: the latest scheduled time at or before now, which is the time APScheduler
coalesced the run to. A digest the clock meets for the first time (at start, or newly
added) is caught up: firings it missed within the grace coalesce into one call at
the latest of them (``core.digests.schedule.due_firings``); older ones are left to
the next firing, which audits them as skipped.

APScheduler's rule holds here too: one clock per deployment. Two started by mistake
are harmless, since a firing's run id is derived from the digest and the time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Self
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from core.db.engine import Database
from core.digests.records import active_digests, schedule_version
from core.digests.schedule import due_firings, trigger
from core.logs import log

Fire = Callable[[str, str, datetime], Awaitable[None]]
"""``fire(tenant_id, digest_id, fire_time)``: the scheduled time, in UTC."""

RELOAD_JOB = "tenantry:reload"


@dataclass(frozen=True, slots=True)
class Entry:
    """One digest as the clock schedules it."""

    tenant_id: str
    digest_id: str
    cron: str
    time_zone: str


class DigestClock:
    """Runs digest schedules on an ``AsyncIOScheduler``; use it as ``async with``.

    Args:
        db: Where the schedules are read (and only read).
        fire: Told each firing; it must return soon (submit or enqueue the work).
        grace: How late a firing may still be made (``Settings.digest_grace_s``).
        reload_s: How often to look for changed schedules.
        now: The current time (tests pin it).
    """

    def __init__(self, db: Database, fire: Fire, *, grace: timedelta, reload_s: float = 5.0,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.fire = fire
        self.grace = grace
        self.reload_s = reload_s
        self.now = now
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.entries: dict[str, Entry] = {}
        self._version: tuple[int, str] | None = None

    async def __aenter__(self) -> Self:
        self.scheduler.start()
        await self.reload()
        self.scheduler.add_job(self.reload, IntervalTrigger(seconds=self.reload_s),
                               id=RELOAD_JOB, coalesce=True, max_instances=1)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.scheduler.shutdown(wait=False)

    async def reload(self) -> bool:
        """Bring the jobs in line with the database if its marker moved; whether it did."""
        version = await self.db.run(schedule_version)
        if version == self._version:
            return False
        loaded = await self.db.run(active_digests)
        self._version = version
        wanted = {s.digest.id: Entry(s.digest.tenant_id, s.digest.id, s.digest.cron,
                                     s.time_zone) for s in loaded}
        for digest_id in set(self.entries) - set(wanted):
            self.scheduler.remove_job(self._job_id(digest_id))
            del self.entries[digest_id]
        met: list[str] = []
        for scheduled in loaded:
            entry = wanted[scheduled.digest.id]
            if self.entries.get(entry.digest_id) == entry:
                continue
            if entry.digest_id not in self.entries:
                met.append(entry.digest_id)
            self._schedule(entry)
        for scheduled in loaded:
            if scheduled.digest.id in met:
                digest = scheduled.digest
                await self._catch_up(wanted[digest.id], digest.last_fired_at or digest.created_at)
        log.info("digest schedules loaded", digests=len(self.entries))
        return True

    def _schedule(self, entry: Entry) -> None:
        self.entries[entry.digest_id] = entry
        self.scheduler.add_job(
            self.tick, trigger(entry.cron, ZoneInfo(entry.time_zone)),
            args=[entry.digest_id], id=self._job_id(entry.digest_id), replace_existing=True,
            coalesce=True, misfire_grace_time=max(1, int(self.grace.total_seconds())),
            max_instances=1)

    async def _catch_up(self, entry: Entry, since: datetime) -> None:
        due = due_firings(entry.cron, ZoneInfo(entry.time_zone), since, self.now(), self.grace)
        if due.fire_at is not None:
            log.info("digest caught up", digest_id=entry.digest_id, coalesced=due.coalesced)
            await self._fire(entry, due.fire_at)

    async def tick(self, digest_id: str) -> None:
        """The job of one digest: fire its latest scheduled time at or before now."""
        entry = self.entries.get(digest_id)
        if entry is None:
            return
        now = self.now()
        # Look back at least a minute, so a grace of zero still finds the time just due;
        # how late is too late is the firing's to judge.
        window = max(self.grace, timedelta(minutes=1))
        due = due_firings(entry.cron, ZoneInfo(entry.time_zone), now - window, now, window)
        if due.fire_at is not None:
            await self._fire(entry, due.fire_at)

    async def _fire(self, entry: Entry, fire_time: datetime) -> None:
        try:
            await self.fire(entry.tenant_id, entry.digest_id, fire_time)
        except Exception:
            log.exception("digest firing not handed on", digest_id=entry.digest_id,
                          tenant_id=entry.tenant_id)

    @staticmethod
    def _job_id(digest_id: str) -> str:
        return f"digest:{digest_id}"
