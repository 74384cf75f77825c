"""When a digest fires: its cron read in the tenant's zone, and what a firing is called.

The cron library is APScheduler 3.11's ``CronTrigger``, the same one the clock runs, so
a schedule is validated, caught up and fired by one definition of time:

- Five fields (minute, hour, day of month, month, day of week), read in the tenant's
  IANA zone. Weekdays must be written as names (``mon-fri``): APScheduler 3 counts
  ``0`` as Monday where crontab counts it as Sunday, and a digest must not fire on
  the wrong day because of that.
- Daylight saving, as ``CronTrigger`` defines it: on a spring-forward day a wall time
  that does not exist (``30 2 * * *`` in Berlin on the last Sunday of March) fires
  once, at the same wall time read with the offset before the change (01:30 UTC,
  which is 03:30 summer time); on a fall-back day a wall time that happens twice
  fires twice, once in each offset. Firings are named by their UTC instant, so the
  two are two firings, each exactly once.

A firing's run id and correlation id come from ``(digest, scheduled time in UTC)``
alone, so every clock, retry or worker that handles the same firing names the same run.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from core.errors import InvalidInput

FIRING_NAMESPACE = uuid.UUID("5b0f8a7e-3d2c-4e61-9a57-0c1e2f3a4b5c")
"""The fixed namespace of firing run ids (uuid5): changing it would re-fire history."""

MAX_COUNTED = 10_000
"""Missed firings counted one by one at most; a longer outage reports this many."""

_DIGIT = re.compile(r"\d")


def trigger(cron: str, zone: ZoneInfo) -> CronTrigger:
    """The ``CronTrigger`` of a five-field expression in ``zone``.

    Raises:
        InvalidInput: not five fields, a value out of range, or a numeric weekday.
    """
    fields = cron.split()
    if len(fields) != 5:
        raise InvalidInput(f"a digest's cron needs 5 fields (minute hour day month weekday), "
                           f"got {len(fields)}: {cron!r}")
    if _DIGIT.search(fields[4]):
        raise InvalidInput("write the weekday field with names (mon-fri, sun): the cron "
                           "library counts 0 as Monday, not Sunday")
    try:
        return CronTrigger.from_crontab(cron, timezone=zone)
    except ValueError as exc:
        raise InvalidInput(f"invalid cron {cron!r}: {exc}") from None


def check_cron(cron: str, zone: ZoneInfo) -> str:
    """``cron`` normalised to single spaces, once it parses in ``zone``.

    Raises:
        InvalidInput: see ``trigger``.
    """
    trigger(cron, zone)
    return " ".join(cron.split())


def next_after(cron_trigger: CronTrigger, moment: datetime) -> datetime | None:
    """The first scheduled time strictly after ``moment``, in UTC."""
    after = moment.astimezone(UTC)
    found = cron_trigger.get_next_fire_time(after, after + timedelta(microseconds=1))
    return None if found is None else found.astimezone(UTC)


def firings_between(cron_trigger: CronTrigger, after: datetime, until: datetime,
                    limit: int = MAX_COUNTED) -> list[datetime]:
    """Scheduled times in ``(after, until]``, in UTC, oldest first, at most ``limit``."""
    found: list[datetime] = []
    moment = next_after(cron_trigger, after)
    while moment is not None and moment <= until and len(found) < limit:
        found.append(moment)
        moment = next_after(cron_trigger, moment)
    return found


@dataclass(frozen=True, slots=True)
class Due:
    """What a schedule owes since it last fired.

    Attributes:
        fire_at: The one firing to run now: the latest missed time within the grace,
            standing for every missed time within it (coalesced); ``None`` if none.
        coalesced: How many scheduled times that one firing stands for (1 or more).
        skipped: Missed times older than the grace: not run, to be audited.
    """

    fire_at: datetime | None
    coalesced: int
    skipped: tuple[datetime, ...]


def due_firings(cron: str, zone: ZoneInfo, last_fired_at: datetime, now: datetime,
                grace: timedelta) -> Due:
    """The firings a schedule missed in ``(last_fired_at, now]``, split by ``grace``.

    Those within ``grace`` of ``now`` coalesce into one firing at the latest of them;
    older ones are skipped. ``last_fired_at`` is the digest's last handled firing, or
    its creation for one that never fired.
    """
    missed = firings_between(trigger(cron, zone), last_fired_at, now)
    recent = [moment for moment in missed if now - moment <= grace]
    skipped = tuple(moment for moment in missed if now - moment > grace)
    return Due(fire_at=recent[-1] if recent else None, coalesced=len(recent), skipped=skipped)


def iso(moment: datetime) -> str:
    """A fire time as its ids spell it: UTC, seconds, ``Z``."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def firing_run_id(tenant_id: str, digest_id: str, fire_time: datetime) -> str:
    """The run id of one firing: the same for every clock, retry and worker."""
    return str(uuid.uuid5(FIRING_NAMESPACE, f"{tenant_id}/{digest_id}/{iso(fire_time)}"))


def firing_correlation(digest_id: str, fire_time: datetime) -> str:
    """The correlation id of one firing: ``digest:<id>:<UTC time>``."""
    return f"digest:{digest_id}:{iso(fire_time)}"
