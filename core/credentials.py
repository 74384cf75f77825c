"""Per-tenant credentials for tools (a SaaS API token per tenant), encrypted at rest.

Operators store and remove credentials by tenant id (the CLI has no run); tools read
them only through a ``TenantContext``, so a run can never read another tenant's
credential. The database holds Fernet ciphertext only; plaintext exists in memory
between ``get`` and the tool's request.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import Column, String, Table, Text, delete, func, select, tuple_, update
from sqlalchemy.engine import Connection

from core.context import TenantContext
from core.crypto import CryptoError, Keyring
from core.db.engine import Database, dialect_insert, reads
from core.db.schema import UTCDateTime, metadata, tenants
from core.errors import InvalidInput, NotFound
from core.logs import log

ROTATE_BATCH = 500
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")

tenant_credentials = Table(
    "tenant_credentials",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


def check_name(name: str) -> str:
    """Credential names are short slugs (``crm_token``): they appear in CLI output and logs."""
    if not _NAME.match(name):
        raise InvalidInput(
            "credential name must be 1-100 characters of a-z, 0-9, '_', '.' or '-', "
            f"starting with a letter; got {name!r}"
        )
    return name


class CredentialStore:
    """Encrypted credentials, one row per ``(tenant_id, name)``.

    Args:
        db: The app database.
        keyring: Encrypts on ``put`` and ``rotate_all``, decrypts on ``get``.
    """

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keyring = keyring

    async def put(self, tenant_id: str, name: str, secret: str) -> None:
        """Store or replace a tenant's credential.

        Raises:
            InvalidInput: a malformed name or an empty secret.
            NotFound: no such tenant; a typo must not park a secret under no one.
        """
        check_name(name)
        if not secret:
            raise InvalidInput(f"credential {name!r} must not be empty")
        await self.db.run(put_ciphertext, tenant_id, name, self.keyring.encrypt(secret))
        log.info("credential stored", tenant_id=tenant_id, credential=name)

    async def get(self, ctx: TenantContext, name: str) -> str:
        """The plaintext of the run's tenant's credential ``name``.

        Raises:
            NotFound: this tenant has no such credential (whatever other tenants have).
            CryptoError: the stored value cannot be decrypted with any configured key.
        """
        ciphertext = await self.db.run(_ciphertext, ctx.tenant_id, name)
        if ciphertext is None:
            raise NotFound(f"no credential {name!r} in this tenant")
        return self.keyring.decrypt(ciphertext)

    async def names(self, tenant_id: str) -> list[str]:
        """The names of a tenant's credentials, sorted; never their values."""
        return await self.db.run(credential_names, tenant_id)

    async def delete(self, tenant_id: str, name: str) -> None:
        """Remove a tenant's credential.

        Raises:
            NotFound: the tenant has no such credential.
        """
        await self.db.run(delete_credential, tenant_id, name)
        log.info("credential deleted", tenant_id=tenant_id, credential=name)

    async def count(self) -> int:
        """How many credentials are stored, across all tenants (for operators)."""
        return await self.db.run(_count)

    async def rotate_all(self) -> int:
        """Re-encrypt every credential under the keyring's newest key.

        Works in batches, each its own transaction, and updates a row only if its
        ciphertext is still the one that was read, so a concurrent ``put`` is never
        overwritten with the older secret. Safe to run again after an interruption.

        Returns:
            How many credentials were re-encrypted.

        Raises:
            CryptoError: after every readable row was re-encrypted, if some rows
                cannot be decrypted with any key; the message names them.
        """
        rotated = 0
        unreadable: list[str] = []
        after: tuple[str, str] | None = None
        while True:
            count, failed, after = await self.db.run(self._rotate_batch, after)
            rotated += count
            unreadable += failed
            if after is None:
                break
        if unreadable:
            raise CryptoError(
                f"re-encrypted {rotated} credentials, but {len(unreadable)} cannot be "
                f"decrypted with any configured key: {', '.join(unreadable)}; set them again "
                "with `tenantry credentials set`"
            )
        return rotated

    def _rotate_batch(
        self, conn: Connection, after: tuple[str, str] | None
    ) -> tuple[int, list[str], tuple[str, str] | None]:
        """Re-encrypt one batch; what it rotated, what it could not read, where to go on."""
        c = tenant_credentials.c
        query = select(c.tenant_id, c.name, c.ciphertext).order_by(c.tenant_id, c.name)
        if after is not None:
            query = query.where(tuple_(c.tenant_id, c.name) > tuple_(*after))
        rows = conn.execute(query.limit(ROTATE_BATCH)).all()
        rotated, unreadable = 0, []
        for row in rows:
            try:
                fresh = self.keyring.rotate(row.ciphertext)
            except CryptoError:
                unreadable.append(f"{row.tenant_id}/{row.name}")
                log.warning("credential unreadable", tenant_id=row.tenant_id,
                            credential=row.name)
                continue
            rotated += conn.execute(
                update(tenant_credentials)
                .where(c.tenant_id == row.tenant_id, c.name == row.name,
                       c.ciphertext == row.ciphertext)
                .values(ciphertext=fresh)
            ).rowcount
        more = len(rows) == ROTATE_BATCH
        return rotated, unreadable, (rows[-1].tenant_id, rows[-1].name) if more else None


def put_ciphertext(conn: Connection, tenant_id: str, name: str, ciphertext: str) -> None:
    """Store or replace a tenant's credential, already encrypted."""
    if conn.scalar(select(tenants.c.id).where(tenants.c.id == tenant_id)) is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    now = datetime.now(UTC)
    stmt = dialect_insert(conn, tenant_credentials).values(
        tenant_id=tenant_id, name=name, ciphertext=ciphertext, created_at=now, updated_at=now,
    )
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[tenant_credentials.c.tenant_id, tenant_credentials.c.name],
        set_={"ciphertext": ciphertext, "updated_at": now},
    ))


@reads
def _ciphertext(conn: Connection, tenant_id: str, name: str) -> str | None:
    return conn.scalar(select(tenant_credentials.c.ciphertext).where(
        tenant_credentials.c.tenant_id == tenant_id, tenant_credentials.c.name == name))


@reads
def credential_names(conn: Connection, tenant_id: str) -> list[str]:
    """The names of a tenant's credentials, sorted; never their values."""
    return list(conn.scalars(
        select(tenant_credentials.c.name)
        .where(tenant_credentials.c.tenant_id == tenant_id)
        .order_by(tenant_credentials.c.name)
    ))


def delete_credential(conn: Connection, tenant_id: str, name: str) -> None:
    """Remove a tenant's credential, or raise ``NotFound``."""
    result = conn.execute(delete(tenant_credentials).where(
        tenant_credentials.c.tenant_id == tenant_id, tenant_credentials.c.name == name))
    if result.rowcount == 0:
        raise NotFound(f"no credential {name!r} for tenant {tenant_id!r}")


@reads
def _count(conn: Connection) -> int:
    return int(conn.scalar(select(func.count()).select_from(tenant_credentials)) or 0)


def purge_credentials(conn: Connection, tenant_id: str) -> int:
    """Delete every credential of a tenant (part of a purge); how many went."""
    return int(conn.execute(
        delete(tenant_credentials).where(tenant_credentials.c.tenant_id == tenant_id)
    ).rowcount)
