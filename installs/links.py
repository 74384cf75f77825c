"""Which tenant a Slack workspace or organisation belongs to, and the links that bind them.

A workspace is linked to a tenant only by redeeming an install link that an operator
issued for that tenant: a single-use, expiring token sealed under the deployment's
``Keyring`` (``installs.link_tokens``), which works only while its tenant exists and is
active.

``slack_links`` is keyed ``(enterprise_id, team_id)`` with ``''`` for "none" instead
of NULL: a primary key column cannot be NULL on PostgreSQL, and a NULL would never
equal itself in a unique index on either database. ``('E1', '')`` is an org-wide
(Enterprise Grid) link, ``('E1', 'T1')`` a workspace of that org, ``('', 'T1')`` a
workspace outside any org. ``Link`` turns ``''`` back into ``None``, as Slack does.

Every function runs inside the caller's transaction (``Database.run``)::

    tenant_id = await db.run(redeem, keyring, token)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import CheckConstraint, Column, String, Table, and_, or_, select, update
from sqlalchemy.engine import Connection

from core.crypto import Keyring
from core.db.engine import dialect_insert, reads
from core.db.schema import UTCDateTime, metadata, tenants
from core.errors import Conflict, InvalidInput, NotFound
from installs.link_tokens import INSTALL_LINK, issue_sealed_link, verify_sealed_link

# Importable from here as before the tokens had a module of their own.
from installs.link_tokens import MAX_TTL as MAX_TTL
from installs.link_tokens import PURPOSE as PURPOSE
from installs.link_tokens import InstallLinkError as InstallLinkError
from installs.link_tokens import install_link_nonces as install_link_nonces

LinkStatus = Literal["active", "revoked"]
_SLACK_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")

slack_links = Table(
    "slack_links",
    metadata,
    Column("enterprise_id", String(32), primary_key=True),
    Column("team_id", String(32), primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("installer_user_id", String(32)),
    Column("linked_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    CheckConstraint("status IN ('active', 'revoked')", name="status"),
    CheckConstraint("enterprise_id <> '' OR team_id <> ''", name="key"),
)

@dataclass(frozen=True, slots=True)
class Link:
    """A workspace's (or an org's) link to a tenant; ``team_id is None`` for an org."""

    enterprise_id: str | None
    team_id: str | None
    tenant_id: str
    status: LinkStatus
    linked_at: datetime
    revoked_at: datetime | None
    installer_user_id: str | None

    @property
    def is_org(self) -> bool:
        """Whether this links a whole Enterprise Grid org (every team in it)."""
        return self.team_id is None

    @property
    def active(self) -> bool:
        """Whether requests from this workspace may be served for the tenant."""
        return self.status == "active"


def utc(moment: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite hands back naive ones)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _key(enterprise_id: str | None, team_id: str | None) -> tuple[str, str]:
    for kind, value in (("enterprise", enterprise_id), ("team", team_id)):
        if value and not _SLACK_ID.match(value):
            raise InvalidInput(f"Slack {kind} id must be 1-32 letters or digits, got {value!r}")
    if not enterprise_id and not team_id:
        raise InvalidInput("a Slack link needs an enterprise id, a team id, or both")
    return enterprise_id or "", team_id or ""


def _link(row: Any) -> Link:
    return Link(
        enterprise_id=row.enterprise_id or None,
        team_id=row.team_id or None,
        tenant_id=row.tenant_id,
        status=row.status,
        linked_at=utc(row.linked_at),
        revoked_at=None if row.revoked_at is None else utc(row.revoked_at),
        installer_user_id=row.installer_user_id,
    )


def issue_install_link(
    conn: Connection, keyring: Keyring, tenant_id: str, base_url: str, ttl: timedelta
) -> str:
    """A single-use URL that links the Slack workspace installing through it to the tenant.

    Args:
        keyring: Seals the claim; the server that redeems it needs the same keys.
        base_url: The deployment's public URL (``TENANTRY_PUBLIC_URL``).
        ttl: How long the link stays usable, at most ``MAX_TTL``.

    Raises:
        NotFound: no such tenant.
        InstallLinkError: the tenant is suspended.
        InvalidInput: a malformed base URL or a TTL out of range.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise InvalidInput(f"base url must be http(s)://host[/path], got {base_url!r}")
    token = issue_sealed_link(conn, keyring, INSTALL_LINK, tenant_id, ttl)
    return f"{base_url.rstrip('/')}/slack/install?link={token}"


@reads
def check_install_link(conn: Connection, keyring: Keyring, token: str) -> str:
    """The tenant of a usable install link, without spending it.

    For the start of an OAuth flow: the installer learns at once that a link is dead,
    not after approving the app in Slack; an abandoned flow does not burn the link.

    Raises:
        InstallLinkError: the link is forged, expired, used, or its tenant unusable.
    """
    return verify_sealed_link(conn, keyring, INSTALL_LINK, token, spend=False)


def redeem(conn: Connection, keyring: Keyring, token: str) -> str:
    """Spend an install link and return its tenant; one conditional UPDATE, so once only.

    Raises:
        InstallLinkError: the link is forged, expired, used, or its tenant unusable.
    """
    return verify_sealed_link(conn, keyring, INSTALL_LINK, token, spend=True)


def _upsert(
    conn: Connection, key: tuple[str, str], tenant_id: str, installer: str | None
) -> Link:
    c = slack_links.c
    insert = dialect_insert(conn, slack_links).values(
        enterprise_id=key[0], team_id=key[1], tenant_id=tenant_id, status="active",
        installer_user_id=installer, linked_at=datetime.now(UTC), revoked_at=None,
    )
    conn.execute(insert.on_conflict_do_update(
        index_elements=[c.enterprise_id, c.team_id],
        set_={name: insert.excluded[name]
              for name in ("tenant_id", "status", "installer_user_id", "linked_at", "revoked_at")},
        where=or_(c.status == "revoked", c.tenant_id == insert.excluded.tenant_id),
    ))
    row = conn.execute(select(slack_links).where(
        c.enterprise_id == key[0], c.team_id == key[1]
    )).one()
    if row.tenant_id != tenant_id:
        raise Conflict(
            f"Slack {'org' if not key[1] else 'workspace'} {key[1] or key[0]} is linked to "
            f"tenant {row.tenant_id!r}; revoke that link first"
        )
    return _link(row)


def link(
    conn: Connection, enterprise_id: str | None, team_id: str | None, tenant_id: str,
    installer: str | None,
) -> Link:
    """Link a workspace (``team_id``) or a whole org (``team_id=None``) to a tenant.

    Relinking to the same tenant refreshes the link; a revoked link may be relinked to
    any tenant. Moving an active link to another tenant is refused: that would hand a
    workspace's users, and its history, to another customer without anyone revoking.

    Raises:
        NotFound: no such tenant.
        Conflict: the key is actively linked to another tenant.
    """
    key = _key(enterprise_id, team_id)
    if conn.scalar(select(tenants.c.id).where(tenants.c.id == tenant_id)) is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return _upsert(conn, key, tenant_id, installer)


def redeem_and_link(
    conn: Connection, keyring: Keyring, token: str, enterprise_id: str | None,
    team_id: str | None, installer: str | None,
) -> Link:
    """Spend an install link and link the workspace or org to its tenant, atomically.

    One transaction: a refused link (``Conflict``) leaves the install link unspent.

    Raises:
        InstallLinkError: the link is unusable.
        Conflict: the key is actively linked to another tenant.
    """
    key = _key(enterprise_id, team_id)
    tenant_id = verify_sealed_link(conn, keyring, INSTALL_LINK, token, spend=True)
    return _upsert(conn, key, tenant_id, installer)


@reads
def resolve(
    conn: Connection, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool
) -> Link | None:
    """The link that decides which tenant serves a request from this workspace.

    A workspace's own active link wins; else its org's active link, which covers every
    team of the org; else the most specific revoked link, so the caller can say
    "revoked" rather than "not linked". ``None`` when nothing matches.

    Args:
        is_enterprise_install: Whether the request came through an org-wide install;
            only then may ``team_id`` be absent (org-level events).
    """
    keys = []
    if team_id:
        keys.append(_key(enterprise_id, team_id))
    elif not is_enterprise_install:
        return None
    if enterprise_id:
        keys.append(_key(enterprise_id, None))
    if not keys:
        return None
    c = slack_links.c
    rows = conn.execute(select(slack_links).where(
        or_(*(and_(c.enterprise_id == e, c.team_id == t) for e, t in keys))
    )).all()
    found = sorted((_link(row) for row in rows), key=lambda ln: (not ln.active, ln.is_org))
    return found[0] if found else None


def revoke(conn: Connection, enterprise_id: str | None, team_id: str | None) -> Link | None:
    """Revoke a link (uninstall, tokens revoked, operator); ``None`` if there was none."""
    key = _key(enterprise_id, team_id)
    c = slack_links.c
    where = (c.enterprise_id == key[0], c.team_id == key[1])
    conn.execute(update(slack_links).where(*where, c.status == "active").values(
        status="revoked", revoked_at=datetime.now(UTC)
    ))
    row = conn.execute(select(slack_links).where(*where)).first()
    return None if row is None else _link(row)


@reads
def list_links(conn: Connection) -> list[Link]:
    """Every link, active and revoked, by enterprise then team (for operators)."""
    rows = conn.execute(
        select(slack_links).order_by(slack_links.c.enterprise_id, slack_links.c.team_id)
    ).all()
    return [_link(row) for row in rows]
