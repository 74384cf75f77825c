"""Firing a digest: one scheduled run, posted once to its destination.

``fire_digest(runtime, tenant_id, digest_id, fire_time)`` is the one entry point: the
in-process clock of ``tenantry serve`` submits it to the executor, ``tenantry clock``
awaits it, and a queue worker calls it the same way. A firing is an agent run with
initiator ``cron`` and principal ``service:digests`` (a service principal whose roles
are only the tenant's grants to it; none by default), named by
``(digest, scheduled time)``:

- the digest row's ``last_fired_at`` is moved forward by one conditional UPDATE: of
  several clocks, retries or workers handling a firing, one claims it; the run id
  derived from the same pair makes a second start a ``Conflict`` too;
- missed firings within the grace were coalesced by the caller into this one (the
  latest); older ones are audited here as ``digest.skipped`` with their count;
- a suspended tenant or a destination that is no longer linked pauses the digest,
  audited as ``digest.paused`` with the reason; nothing runs;
- halts, refusals and failures are posted to the destination and told to the admins
  the destination's platform can reach (``Poster.tell_admins``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.engine import Connection

from bots import wording
from bots.posting import Notice, Poster
from bots.runtime import Runtime
from core.agent import RunOutcome
from core.audit import events
from core.audit.log import AuditLog
from core.digests.records import Digest, claim_firing, get_digest, set_digest_status
from core.digests.schedule import (
    MAX_COUNTED,
    firing_correlation,
    firing_run_id,
    firings_between,
    iso,
    trigger,
)
from core.errors import Conflict, NotFound, RunRefused
from core.logs import log
from core.runs import get_run, mark_delivered
from core.tenants import get_tenant
from installs.destinations import destination_problem

DIGEST_PRINCIPAL = "service:digests"
"""Who a digest's run acts as: the tenant grants it roles like anyone else (none at first)."""

FiredStatus = Literal["posted", "already_fired", "paused", "skipped", "refused", "unknown",
                      "undeliverable"]


@dataclass(frozen=True, slots=True)
class Fired:
    """What became of one firing.

    Attributes:
        status: ``posted`` (the run ran and its outcome was posted, whatever the run's
            own status), ``already_fired`` (another clock, retry or worker had it),
            ``paused`` (the digest is, or was paused now), ``skipped`` (too late),
            ``refused`` (the run was refused; posted), ``unknown`` (no such digest),
            ``undeliverable`` (no transport for its destination in this process).
        run_id: The firing's run id, whether or not a run exists.
        outcome: The run's outcome, when this call ran it.
        reason: Why it paused, was refused or was undeliverable.
    """

    status: FiredStatus
    run_id: str
    outcome: RunOutcome | None = None
    reason: str | None = None


def _pause(conn: Connection, audit: AuditLog, digest: Digest, reason: str,
           detail: str | None) -> bool:
    if not set_digest_status(conn, digest.tenant_id, digest.id, "paused", reason):
        return False
    audit.append(conn, digest.tenant_id, events.DIGEST_PAUSED, {
        "by": DIGEST_PRINCIPAL, "digest": digest.id, "reason": reason,
        **({"detail": detail} if detail else {})})
    return True


@dataclass(frozen=True, slots=True)
class _Claim:
    digest: Digest
    late: bool


def _claim(conn: Connection, audit: AuditLog, tenant_id: str, digest_id: str,
           fire_time: datetime, now: datetime, grace: timedelta) -> _Claim | None:
    """Claim the firing, and audit what it leaves behind; ``None`` if it was claimed."""
    digest = get_digest(conn, tenant_id, digest_id)
    if not claim_firing(conn, tenant_id, digest_id, fire_time):
        return None
    zone = get_tenant(conn, tenant_id).zone
    since = digest.last_fired_at or digest.created_at
    missed = [moment for moment in firings_between(trigger(digest.cron, zone), since, fire_time)
              if moment < fire_time]
    late = now - fire_time > grace
    skipped = [moment for moment in missed if now - moment > grace]
    if late:
        skipped.append(fire_time)
    if skipped:
        audit.append(conn, tenant_id, events.DIGEST_SKIPPED, {
            "digest": digest_id, "count": len(skipped), "first": iso(skipped[0]),
            "last": iso(skipped[-1]), "grace_s": int(grace.total_seconds()),
            **({"at_least": True} if len(missed) >= MAX_COUNTED else {})})
    if not late:
        audit.append(conn, tenant_id, events.DIGEST_FIRED, {
            "digest": digest_id, "fire_time": iso(fire_time),
            "coalesced": 1 + len(missed) - len(skipped)},
            run_id=firing_run_id(tenant_id, digest_id, fire_time))
    return _Claim(digest, late)


async def fire_digest(runtime: Runtime, tenant_id: str, digest_id: str,
                      fire_time: datetime, *, now: datetime | None = None) -> Fired:
    """Run the digest's firing at ``fire_time`` (its scheduled time) and post the outcome.

    Safe to call any number of times for one firing, concurrently or not, in any
    number of processes: one call runs and posts, the others return ``already_fired``.

    Args:
        now: The time to judge lateness by (tests); the clock's time by default.
    """
    fire_time = fire_time.astimezone(UTC)
    now = now or datetime.now(UTC)
    run_id = firing_run_id(tenant_id, digest_id, fire_time)
    db, audit = runtime.db, runtime.audit
    try:
        digest = await db.run(get_digest, tenant_id, digest_id)
        tenant = await db.run(get_tenant, tenant_id)
    except NotFound:
        log.info("digest firing for an unknown digest dropped", tenant_id=tenant_id,
                 digest_id=digest_id)
        return Fired("unknown", run_id)
    if not digest.active:
        return Fired("paused", run_id, reason=digest.paused_reason)
    problem: tuple[str, str | None] | None = (
        ("tenant_suspended", None) if tenant.status != "active" else None)
    if problem is None:
        found = await db.run(destination_problem, tenant_id, digest.destination)
        problem = None if found is None else ("destination_revoked", found)
    if problem is not None:
        if await db.run(_pause, audit, digest, *problem):
            log.warning("digest paused", tenant_id=tenant_id, digest_id=digest_id,
                        reason=problem[0], detail=problem[1])
        return Fired("paused", run_id, reason=problem[0])
    poster = _poster(runtime, digest)
    if poster is None:
        return Fired("undeliverable", run_id, reason=digest.destination.kind)
    grace = timedelta(seconds=runtime.settings.digest_grace_s)
    claim = await db.run(_claim, audit, tenant_id, digest_id, fire_time, now, grace)
    if claim is None:
        return Fired("already_fired", run_id)
    if claim.late:
        log.info("digest firing skipped: later than its grace", tenant_id=tenant_id,
                 digest_id=digest_id, fire_time=iso(fire_time))
        return Fired("skipped", run_id)
    return await _run(runtime, poster, claim.digest, fire_time, run_id)


async def run_claimed(runtime: Runtime, tenant_id: str, digest_id: str,
                      fire_time: datetime) -> Fired:
    """Run a firing that was claimed but whose run never opened (its process died
    between the two); the run id still makes a second start a ``Conflict``."""
    fire_time = fire_time.astimezone(UTC)
    run_id = firing_run_id(tenant_id, digest_id, fire_time)
    try:
        digest = await runtime.db.run(get_digest, tenant_id, digest_id)
    except NotFound:
        return Fired("unknown", run_id)
    poster = _poster(runtime, digest)
    if poster is None:
        return Fired("undeliverable", run_id, reason=digest.destination.kind)
    return await _run(runtime, poster, digest, fire_time, run_id)


def _poster(runtime: Runtime, digest: Digest) -> Poster | None:
    poster = runtime.posters.get(digest.destination.kind)
    if poster is None:
        log.error("no transport in this process posts digests there; not posted",
                  tenant_id=digest.tenant_id, digest_id=digest.id,
                  kind=digest.destination.kind)
    return poster


async def _run(runtime: Runtime, poster: Poster, digest: Digest, fire_time: datetime,
               run_id: str) -> Fired:
    try:
        grant = await runtime.agent.open(
            tenant_id=digest.tenant_id, principal_id=DIGEST_PRINCIPAL,
            principal_kind="service", initiator="cron", run_id=run_id,
            correlation_id=firing_correlation(digest.id, fire_time))
        outcome = await runtime.agent.start(grant, digest.prompt)
    except Conflict:
        return Fired("already_fired", run_id)
    except RunRefused as refused:
        await _post(runtime, poster, digest, refusal_notice(digest, refused.reason))
        return Fired("refused", run_id, reason=refused.reason)
    await _post(runtime, poster, digest, outcome_notice(digest, outcome))
    # A retried job finds it delivered and posts nothing more (bots.jobs.digest).
    await runtime.db.run(mark_delivered, digest.tenant_id, run_id)
    return Fired("posted", run_id, outcome)


async def _post(runtime: Runtime, poster: Poster, digest: Digest, notice: Notice) -> None:
    """Post to the destination (a gone destination pauses the digest); a notice that is
    not an answer goes to the admins too."""
    try:
        await poster.post(digest.tenant_id, digest.destination, notice)
    except NotFound as gone:
        log.warning("digest destination gone; digest paused", tenant_id=digest.tenant_id,
                    digest_id=digest.id, error=str(gone))
        await runtime.db.run(_pause, runtime.audit, digest, "destination_revoked",
                             "not_postable")
    if notice.kind != "answer":
        told = await poster.tell_admins(digest.tenant_id, digest.destination, notice)
        log.info("digest trouble told to admins", tenant_id=digest.tenant_id,
                 digest_id=digest.id, kind=notice.kind, admins=told)


def outcome_notice(digest: Digest, outcome: RunOutcome) -> Notice:
    """How a firing's outcome reads at its destination."""
    if outcome.status == "completed":
        return Notice(digest.name, outcome.answer or "", "answer")
    halt = outcome.halt or {}
    if outcome.status == "halted" and halt.get("ceiling") == wording.UNCONFIRMED_TOOL:
        return Notice(digest.name, wording.DIGEST_UNCONFIRMED.format(
            capability=halt.get("capability", ""), run_id=outcome.run_id), "halt")
    if outcome.status == "halted":
        reached = wording.reached(str(halt.get("ceiling", "")), halt.get("limit"),
                                  halt.get("used"))
        words = wording.DIGEST_HALTED if reached.resumable else wording.DIGEST_MONTHLY_HALT
        return Notice(digest.name, words.format(reached=reached.described,
                                                run_id=outcome.run_id), "halt")
    return Notice(digest.name, wording.DIGEST_FAILED, "failure")


def refusal_notice(digest: Digest, reason: str) -> Notice:
    """How a refused firing reads (a spent allowance, a ceiling too small for a call)."""
    why = wording.REFUSALS.get(reason, wording.REFUSED)
    return Notice(digest.name, wording.DIGEST_REFUSED.format(why=why), "refusal")


async def deliver_digest(runtime: Runtime, outcome: RunOutcome) -> None:
    """Post a digest's run resumed without its firing (after a crash or a restart).

    Runs that are not a digest's firing are left to the other deliverers.
    """
    try:
        record = await runtime.db.run(get_run, outcome.tenant_id, outcome.run_id)
    except NotFound:
        return
    correlation = record.correlation_id or ""
    if record.initiator != "cron" or not correlation.startswith("digest:"):
        return
    digest_id = correlation.split(":", 2)[1]
    try:
        digest = await runtime.db.run(get_digest, outcome.tenant_id, digest_id)
    except NotFound:
        log.info("resumed digest run of a removed digest not posted", run_id=outcome.run_id)
        return
    poster = _poster(runtime, digest)
    if poster is None:
        return
    await _post(runtime, poster, digest, outcome_notice(digest, outcome))
