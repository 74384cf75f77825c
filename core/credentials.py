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
from sqlalchemy.ext.asyncio import AsyncConnection

from core.context import TenantContext
from core.crypto import CryptoError, Keyring
from core.db.engine import Database
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
        ciphertext = self.keyring.encrypt(secret)
        now = datetime.now(UTC)
        async with self.db.begin() as conn:
            known = await conn.scalar(select(tenants.c.id).where(tenants.c.id == tenant_id))
            if known is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            stmt = self.db.insert(tenant_credentials).values(
                tenant_id=tenant_id, name=name, ciphertext=ciphertext,
                created_at=now, updated_at=now,
            )
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[tenant_credentials.c.tenant_id, tenant_credentials.c.name],
                set_={"ciphertext": ciphertext, "updated_at": now},
            ))
        log.info("credential stored", tenant_id=tenant_id, credential=name)

    async def get(self, ctx: TenantContext, name: str) -> str:
        """The plaintext of the run's tenant's credential ``name``.

        Raises:
            NotFound: this tenant has no such credential (whatever other tenants have).
            CryptoError: the stored value cannot be decrypted with any configured key.
        """
        async with self.db.begin() as conn:
            ciphertext = await conn.scalar(
                select(tenant_credentials.c.ciphertext).where(
                    tenant_credentials.c.tenant_id == ctx.tenant_id,
                    tenant_credentials.c.name == name,
                )
            )
        if ciphertext is None:
            raise NotFound(f"no credential {name!r} in this tenant")
        return self.keyring.decrypt(ciphertext)

    async def names(self, tenant_id: str) -> list[str]:
        """The names of a tenant's credentials, sorted; never their values."""
        async with self.db.begin() as conn:
            rows = await conn.scalars(
                select(tenant_credentials.c.name)
                .where(tenant_credentials.c.tenant_id == tenant_id)
                .order_by(tenant_credentials.c.name)
            )
            return list(rows)

    async def delete(self, tenant_id: str, name: str) -> None:
        """Remove a tenant's credential.

        Raises:
            NotFound: the tenant has no such credential.
        """
        async with self.db.begin() as conn:
            result = await conn.execute(
                delete(tenant_credentials).where(
                    tenant_credentials.c.tenant_id == tenant_id,
                    tenant_credentials.c.name == name,
                )
            )
        if result.rowcount == 0:
            raise NotFound(f"no credential {name!r} for tenant {tenant_id!r}")
        log.info("credential deleted", tenant_id=tenant_id, credential=name)

    async def purge_tenant(self, conn: AsyncConnection, tenant_id: str) -> int:
        """Delete every credential of a tenant inside the caller's transaction.

        Takes a connection so that a tenant's deletion removes its secrets in the
        same transaction as the rest of its data, or not at all.

        Returns:
            How many credentials were deleted.
        """
        result = await conn.execute(
            delete(tenant_credentials).where(tenant_credentials.c.tenant_id == tenant_id)
        )
        return result.rowcount

    async def count(self) -> int:
        """How many credentials are stored, across all tenants (for operators)."""
        async with self.db.begin() as conn:
            total = await conn.scalar(select(func.count()).select_from(tenant_credentials))
        return int(total or 0)

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
            query = select(
                tenant_credentials.c.tenant_id, tenant_credentials.c.name,
                tenant_credentials.c.ciphertext,
            ).order_by(tenant_credentials.c.tenant_id, tenant_credentials.c.name)
            if after is not None:
                key = tuple_(tenant_credentials.c.tenant_id, tenant_credentials.c.name)
                query = query.where(key > tuple_(*after))
            async with self.db.begin() as conn:
                rows = (await conn.execute(query.limit(ROTATE_BATCH))).all()
                for row in rows:
                    try:
                        fresh = self.keyring.rotate(row.ciphertext)
                    except CryptoError:
                        unreadable.append(f"{row.tenant_id}/{row.name}")
                        log.warning("credential unreadable", tenant_id=row.tenant_id,
                                    credential=row.name)
                        continue
                    result = await conn.execute(
                        update(tenant_credentials)
                        .where(
                            tenant_credentials.c.tenant_id == row.tenant_id,
                            tenant_credentials.c.name == row.name,
                            tenant_credentials.c.ciphertext == row.ciphertext,
                        )
                        .values(ciphertext=fresh)
                    )
                    rotated += result.rowcount
            if len(rows) < ROTATE_BATCH:
                break
            after = (rows[-1].tenant_id, rows[-1].name)
        if unreadable:
            raise CryptoError(
                f"re-encrypted {rotated} credentials, but {len(unreadable)} cannot be "
                f"decrypted with any configured key: {', '.join(unreadable)}; set them again "
                "with `tenantry credentials set`"
            )
        return rotated
