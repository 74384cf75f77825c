"""Digests as stored: what to ask, when, and where the answer goes.

Every function runs inside the caller's transaction (``Database.run``) and filters by
tenant, so a digest id of another tenant is simply not found. Changing a digest here
audits nothing: the operators' entry points go through ``core.admin.Admin``, and the
firing path (``bots.digests``) records its own events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from uuid6 import uuid7

from core.context import check_id
from core.db.engine import reads
from core.db.schema import as_utc, tenants
from core.digests.destinations import Destination, destination_from_json
from core.digests.schedule import check_cron
from core.digests.tables import MAX_NAME, MAX_PROMPT, digests
from core.errors import Conflict, InvalidInput, NotFound
from core.tenants import get_tenant

DigestStatus = Literal["active", "paused"]

@dataclass(frozen=True, slots=True)
class Digest:
    """A tenant's schedule.

    Attributes:
        last_fired_at: The scheduled time (UTC) of the latest firing handled, run or
            skipped, or when the digest was last resumed; ``None`` before either.
        paused_reason: ``operator``, ``admin``, ``tenant_suspended`` or
            ``destination_revoked``; ``None`` while active.
    """

    id: str
    tenant_id: str
    name: str
    cron: str
    prompt: str
    destination: Destination
    status: DigestStatus
    paused_reason: str | None
    created_at: datetime
    updated_at: datetime
    last_fired_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the clock fires it."""
        return self.status == "active"


def _digest(row: Any) -> Digest:
    created, updated = as_utc(row.created_at), as_utc(row.updated_at)
    assert created is not None and updated is not None
    return Digest(id=row.id, tenant_id=row.tenant_id, name=row.name, cron=row.cron,
                  prompt=row.prompt, destination=destination_from_json(row.destination),
                  status=row.status, paused_reason=row.paused_reason, created_at=created,
                  updated_at=updated, last_fired_at=as_utc(row.last_fired_at))


def check_name(name: str) -> str:
    """A digest's name: its handle for operators and admins, unique within the tenant."""
    name = " ".join(name.split())
    if not 0 < len(name) <= MAX_NAME:
        raise InvalidInput(f"a digest's name must be 1-{MAX_NAME} characters")
    return name


def check_prompt(prompt: str) -> str:
    """A digest's prompt, within ``MAX_PROMPT`` characters."""
    prompt = prompt.strip()
    if not 0 < len(prompt) <= MAX_PROMPT:
        raise InvalidInput(f"a digest's prompt must be 1-{MAX_PROMPT} characters")
    return prompt


def add_digest(conn: Connection, tenant_id: str, *, name: str, cron: str, prompt: str,
               destination: Destination) -> Digest:
    """Store a new, active digest; its cron is checked in the tenant's zone.

    Raises:
        NotFound: no such tenant.
        InvalidInput: a malformed name, cron or prompt.
        Conflict: the tenant has a digest of that name already.
    """
    check_id("tenant", tenant_id)
    tenant = get_tenant(conn, tenant_id)
    now = datetime.now(UTC)
    row = {"id": str(uuid7()), "tenant_id": tenant_id, "name": check_name(name),
           "cron": check_cron(cron, tenant.zone), "prompt": check_prompt(prompt),
           "destination": destination.as_json(), "status": "active", "paused_reason": None,
           "created_at": now, "updated_at": now, "last_fired_at": None}
    try:
        conn.execute(digests.insert().values(row))
    except IntegrityError:
        raise Conflict(f"tenant {tenant_id!r} has a digest named {row['name']!r} already") \
            from None
    return _digest(SimpleNamespace(**row))


@reads
def get_digest(conn: Connection, tenant_id: str, digest_id: str) -> Digest:
    """The tenant's digest ``digest_id``; another tenant's is not found."""
    row = conn.execute(select(digests).where(digests.c.tenant_id == tenant_id,
                                             digests.c.id == digest_id)).first()
    if row is None:
        raise NotFound(f"no digest {digest_id!r} in tenant {tenant_id!r}")
    return _digest(row)


@reads
def find_digest(conn: Connection, tenant_id: str, handle: str) -> Digest:
    """The tenant's digest by id or by name (what an operator types)."""
    c = digests.c
    row = conn.execute(select(digests).where(
        c.tenant_id == tenant_id, or_(c.id == handle, c.name == " ".join(handle.split())),
    )).first()
    if row is None:
        raise NotFound(f"no digest {handle!r} in tenant {tenant_id!r}")
    return _digest(row)


@reads
def list_digests(conn: Connection, tenant_id: str) -> list[Digest]:
    """The tenant's digests, by name."""
    return [_digest(row) for row in conn.execute(
        select(digests).where(digests.c.tenant_id == tenant_id).order_by(digests.c.name))]


@dataclass(frozen=True, slots=True)
class Scheduled:
    """An active digest as the clock needs it: its schedule and its tenant's zone."""

    digest: Digest
    time_zone: str


@reads
def active_digests(conn: Connection) -> list[Scheduled]:
    """Every active digest of every active tenant, with the tenant's zone: the clock's load.

    The clock only ever fires through its callback, which checks the tenant again.
    """
    query = (select(digests, tenants.c.time_zone)
             .join(tenants, tenants.c.id == digests.c.tenant_id)
             .where(digests.c.status == "active", tenants.c.status == "active")
             .order_by(digests.c.id))
    return [Scheduled(_digest(row), row.time_zone) for row in conn.execute(query)]


@reads
def schedule_version(conn: Connection) -> tuple[int, str]:
    """A cheap marker that changes whenever what the clock should run may have changed:
    how many digests there are, and the latest change to them or to a tenant."""
    count, changed = conn.execute(select(func.count(), func.max(digests.c.updated_at))
                                  .select_from(digests)).one()
    tenant_changed = conn.scalar(select(func.max(tenants.c.updated_at)))
    return int(count), f"{as_utc(changed)}|{as_utc(tenant_changed)}"


def set_digest_status(conn: Connection, tenant_id: str, digest_id: str, status: DigestStatus,
                      reason: str | None = None) -> bool:
    """Pause (with a reason) or resume a digest; ``False`` if it already was so.

    One conditional UPDATE: of two processes pausing the same digest, one reports it.
    Resuming owes nothing from the pause: ``last_fired_at`` moves to now, so neither
    a catch-up nor a skipped count covers the paused time.

    Raises:
        NotFound: no such digest in this tenant.
    """
    get_digest(conn, tenant_id, digest_id)
    now = datetime.now(UTC)
    changed = conn.execute(
        update(digests)
        .where(digests.c.tenant_id == tenant_id, digests.c.id == digest_id,
               digests.c.status != status)
        .values(status=status, paused_reason=reason if status == "paused" else None,
                updated_at=now, **({"last_fired_at": now} if status == "active" else {}))
    )
    return changed.rowcount == 1


def remove_digest(conn: Connection, tenant_id: str, digest_id: str) -> Digest:
    """Delete a digest; its runs and audit events stay.

    Raises:
        NotFound: no such digest in this tenant.
    """
    found = get_digest(conn, tenant_id, digest_id)
    conn.execute(digests.delete().where(digests.c.tenant_id == tenant_id,
                                        digests.c.id == digest_id))
    return found


def claim_firing(conn: Connection, tenant_id: str, digest_id: str, fire_time: datetime) -> bool:
    """Take the firing at ``fire_time``: ``True`` for exactly one caller per firing.

    One conditional UPDATE moves ``last_fired_at`` forward; a second clock, a retry or
    an older firing arriving late finds it there already and gets ``False``.
    """
    c = digests.c
    # ``updated_at`` stays: a firing is no change of schedule for the clock to reload.
    claimed = conn.execute(
        update(digests)
        .where(c.tenant_id == tenant_id, c.id == digest_id, c.status == "active",
               or_(c.last_fired_at.is_(None), c.last_fired_at < fire_time))
        .values(last_fired_at=fire_time)
    )
    return claimed.rowcount == 1


def purge_digests(conn: Connection, tenant_id: str) -> int:
    """Delete every digest of a tenant (a purge); how many."""
    deleted = conn.execute(digests.delete().where(digests.c.tenant_id == tenant_id))
    return int(deleted.rowcount)
