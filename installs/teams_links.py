"""Which tenant an Entra (Microsoft 365) tenant belongs to, and the codes that link them.

A Teams request names its Entra tenant (``channelData.tenant.id``, checked against the
token), never a Tenantry tenant. The link between them lives in ``teams_tenants``:

1. The app is installed (``installationUpdate``, action ``add``): ``record_pending``
   records the Entra tenant as ``pending``. Nothing is served for it yet.
2. An operator issues a link code for a tenant (``tenantry teams link-code``); an
   admin of that customer sends ``link <code>`` to the bot. ``redeem_link_code`` spends
   the code and makes the link ``active``, in one transaction.
3. The app is removed (``installationUpdate``, action ``remove``), or an operator
   unlinks: ``revoke_teams`` marks the link ``revoked`` and forgets the Entra tenant's
   conversation references. History and runs stay until the tenant is purged.

A revoked Entra tenant that installs the app again is ``pending`` again, without a
tenant: a new link code is needed. Whoever reinstalls may not be whoever linked, and
the removal ended the customer's consent; relinking silently would hand the
reinstalled app, and the old tenant's history, to them. A code costs one command.

Link codes are single-use tokens like Slack install links (``installs.link_tokens``),
sealed for another purpose: neither is ever accepted as the other.

Every function runs inside the caller's transaction (``Database.run``)::

    link = await db.run(redeem_link_code, audit, keyring, code, entra_tenant_id, by)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import CheckConstraint, Column, String, Table, delete, select, update
from sqlalchemy.engine import Connection

from core.audit.events import WORKSPACE_LINKED, WORKSPACE_UNLINKED
from core.audit.log import AuditLog
from core.crypto import Keyring
from core.db.engine import dialect_insert, reads
from core.db.schema import UTCDateTime, metadata
from core.errors import Conflict, InvalidInput
from installs.link_tokens import (
    TEAMS_LINK_CODE,
    InstallLinkError,
    install_link_nonces,
    issue_sealed_link,
    verify_sealed_link,
)
from installs.links import utc
from installs.principals import check_guid
from installs.teams_conversations import (
    forget_conversations,
    teams_activities,
    teams_conversations,
)

TeamsStatus = Literal["pending", "active", "revoked"]
MAX_BY = 200

teams_tenants = Table(
    "teams_tenants",
    metadata,
    Column("entra_tenant_id", String(64), primary_key=True),
    Column("tenant_id", String(64), index=True),
    Column("status", String(16), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("linked_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("linked_by", String(MAX_BY)),
    CheckConstraint("status IN ('pending', 'active', 'revoked')", name="status"),
    CheckConstraint("status <> 'active' OR tenant_id IS NOT NULL", name="tenant"),
)


@dataclass(frozen=True, slots=True)
class TeamsLink:
    """An Entra tenant as Tenantry knows it: pending, linked to a tenant, or revoked.

    Attributes:
        tenant_id: The tenant it serves (``active``) or served (``revoked``); ``None``
            while ``pending``.
        revoked_at: When it was last revoked; kept while it is pending again.
        linked_by: The principal who redeemed the link code (``teams:<tenant>:<user>``).
    """

    entra_tenant_id: str
    tenant_id: str | None
    status: TeamsStatus
    first_seen_at: datetime
    linked_at: datetime | None
    revoked_at: datetime | None
    linked_by: str | None

    @property
    def active(self) -> bool:
        """Whether requests from this Entra tenant may be served for ``tenant_id``."""
        return self.status == "active"


def _when(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _teams_link(row: Any) -> TeamsLink:
    return TeamsLink(
        entra_tenant_id=row.entra_tenant_id, tenant_id=row.tenant_id, status=row.status,
        first_seen_at=utc(row.first_seen_at), linked_at=_when(row.linked_at),
        revoked_at=_when(row.revoked_at), linked_by=row.linked_by,
    )


def _entra(entra_tenant_id: str) -> str:
    return check_guid("Entra tenant id", entra_tenant_id)


def _get(conn: Connection, entra: str) -> TeamsLink | None:
    row = conn.execute(select(teams_tenants).where(
        teams_tenants.c.entra_tenant_id == entra
    )).first()
    return None if row is None else _teams_link(row)


def record_pending(conn: Connection, entra_tenant_id: str) -> TeamsLink:
    """Record an Entra tenant that installed the app; an active link stays as it is.

    A revoked one becomes pending, its tenant forgotten (see the module docstring).

    Raises:
        InvalidInput: the id is not a GUID.
    """
    entra = _entra(entra_tenant_id)
    c = teams_tenants.c
    insert = dialect_insert(conn, teams_tenants).values(
        entra_tenant_id=entra, tenant_id=None, status="pending", first_seen_at=datetime.now(UTC),
    )
    conn.execute(insert.on_conflict_do_update(
        index_elements=[c.entra_tenant_id],
        set_={"status": "pending", "tenant_id": None, "linked_at": None, "linked_by": None},
        where=c.status == "revoked",
    ))
    found = _get(conn, entra)
    assert found is not None  # the statement above inserted or kept it
    return found


def issue_link_code(conn: Connection, keyring: Keyring, tenant_id: str, ttl: timedelta) -> str:
    """A single-use code that links the Entra tenant whose admin sends it to ``tenant_id``.

    Args:
        keyring: Seals the code; the server that redeems it needs the same keys.
        ttl: How long the code stays usable, at most ``installs.link_tokens.MAX_TTL``.

    Raises:
        NotFound: no such tenant.
        InstallLinkError: the tenant is suspended.
        InvalidInput: a malformed tenant id or a TTL out of range.
    """
    return issue_sealed_link(conn, keyring, TEAMS_LINK_CODE, tenant_id, ttl)


@reads
def check_link_code(conn: Connection, keyring: Keyring, code: str) -> str:
    """The tenant a usable link code names, without spending it.

    For checks that need the tenant first: whether the sender may link for it.

    Raises:
        InstallLinkError: the code is forged (or an install link), expired, used, or
            its tenant unusable.
    """
    return verify_sealed_link(conn, keyring, TEAMS_LINK_CODE, code.strip(), spend=False)


def redeem_link_code(
    conn: Connection, audit: AuditLog, keyring: Keyring, code: str, entra_tenant_id: str,
    by_principal: str,
) -> TeamsLink:
    """Spend a link code and link the Entra tenant to the code's tenant, atomically.

    The link, new or made again after a revocation, is recorded as ``workspace.linked``
    in the tenant's ``audit`` log.

    The spend and the link share a savepoint: a refused link leaves the code unspent,
    even for a caller that catches the error and commits. A code for the tenant the
    Entra tenant already serves is refused too, so it can still link another Entra
    tenant of the same customer.

    Args:
        by_principal: Who sent the code (``installs.principals.teams_principal``).

    Raises:
        InstallLinkError: the code is forged (or an install link), expired, used, or
            its tenant unusable; or (``already_linked``) the Entra tenant already
            serves that tenant.
        Conflict: the Entra tenant is actively linked to another tenant.
        InvalidInput: a malformed Entra tenant id or principal.
    """
    entra = _entra(entra_tenant_id)
    if not isinstance(by_principal, str) or not 0 < len(by_principal) <= MAX_BY:
        raise InvalidInput(f"the principal redeeming a link code must be 1-{MAX_BY} characters")
    c = teams_tenants.c
    now = datetime.now(UTC)
    with conn.begin_nested():
        tenant_id = verify_sealed_link(conn, keyring, TEAMS_LINK_CODE, code.strip(), spend=True)
        insert = dialect_insert(conn, teams_tenants).values(
            entra_tenant_id=entra, tenant_id=tenant_id, status="active", first_seen_at=now,
            linked_at=now, revoked_at=None, linked_by=by_principal,
        )
        made = conn.scalar(insert.on_conflict_do_update(
            index_elements=[c.entra_tenant_id],
            set_={"status": "active", "tenant_id": tenant_id, "linked_at": now,
                  "revoked_at": None, "linked_by": by_principal},
            where=c.status != "active",
        ).returning(c.entra_tenant_id))
        link = _get(conn, entra)
        assert link is not None  # inserted, updated, or already active
        if link.tenant_id != tenant_id:
            raise Conflict(f"Entra tenant {entra} is linked to tenant {link.tenant_id!r}; "
                           "unlink it first")
        if made is None:
            raise InstallLinkError("already_linked",
                                   f"Entra tenant {entra} is already linked to {tenant_id!r}")
    audit.append(conn, tenant_id, WORKSPACE_LINKED,
                 {"platform": "teams", "entra_tenant_id": entra, "by": by_principal})
    return link


@reads
def resolve_teams(conn: Connection, entra_tenant_id: str) -> TeamsLink | None:
    """The Entra tenant's link, whatever its status; ``None`` if it was never seen.

    Only an ``active`` link may serve requests; the caller tells "not linked yet"
    (``pending``) from "revoked" for its refusal.

    Raises:
        InvalidInput: the id is not a GUID.
    """
    return _get(conn, _entra(entra_tenant_id))


def revoke_teams(
    conn: Connection, audit: AuditLog, entra_tenant_id: str, reason: str,
    *, by: str | None = None,
) -> TeamsLink | None:
    """Revoke an Entra tenant's link and forget its conversation references.

    An active link's revocation is recorded as ``workspace.unlinked`` in its tenant's
    ``audit`` log (with ``by`` when an operator did it); one conditional UPDATE decides
    that, so concurrent revocations record it once. A pending Entra tenant becomes
    revoked with nothing to record. History and runs stay until a purge.

    Args:
        reason: Why, for the log: ``uninstalled`` (the app was removed), ``operator``.

    Returns:
        The link as it is now, or ``None`` if the Entra tenant was never seen.

    Raises:
        InvalidInput: the id is not a GUID.
    """
    entra = _entra(entra_tenant_id)
    c = teams_tenants.c
    forget_conversations(conn, entra)
    served = conn.execute(
        update(teams_tenants)
        .where(c.entra_tenant_id == entra, c.status != "revoked")
        .values(status="revoked", revoked_at=datetime.now(UTC))
        .returning(c.tenant_id)
    ).first()
    if served is not None and served.tenant_id is not None:
        fields = {"platform": "teams", "entra_tenant_id": entra, "reason": reason}
        audit.append(conn, served.tenant_id, WORKSPACE_UNLINKED,
                     fields if by is None else {**fields, "by": by})
    return _get(conn, entra)


@reads
def list_teams_links(conn: Connection) -> list[TeamsLink]:
    """Every Entra tenant seen, pending, active and revoked, by id (for operators)."""
    rows = conn.execute(select(teams_tenants).order_by(teams_tenants.c.entra_tenant_id)).all()
    return [_teams_link(row) for row in rows]


def purge_teams(conn: Connection, tenant_id: str) -> dict[str, int]:
    """Delete what the Teams transport holds of a purged tenant; how much of each.

    Its Entra tenants' links (and the activities they sent), its conversation
    references, and its link codes, used or not. Slack install links are the Slack
    purge's (``installs.purge``): each counts only its own purpose.
    """
    entras = select(teams_tenants.c.entra_tenant_id).where(teams_tenants.c.tenant_id == tenant_id)
    counts = {
        "teams_activities": delete(teams_activities).where(
            teams_activities.c.entra_tenant_id.in_(entras)),
        "teams_conversations": delete(teams_conversations).where(
            teams_conversations.c.tenant_id == tenant_id),
        "teams_tenants": delete(teams_tenants).where(teams_tenants.c.tenant_id == tenant_id),
        "teams_link_codes": delete(install_link_nonces).where(
            install_link_nonces.c.tenant_id == tenant_id,
            install_link_nonces.c.purpose == TEAMS_LINK_CODE.tag),
    }
    return {name: int(conn.execute(statement).rowcount) for name, statement in counts.items()}
