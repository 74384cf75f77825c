"""Administrative actions: each changes a tenant and records who did it in that tenant's
audit log, in one transaction.

The transaction functions of ``core.tenants``, ``core.authz`` and ``core.credentials``
change state and audit nothing (tests and seeding compose them freely); the operators'
entry points (the CLI, and the HTTP API when it exists) act through ``Admin``, so a
tenant's log answers "who granted that role, changed that plan, removed that key".
Events name principals, roles, plans and credential names, never a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from core.api_keys import ApiKey, IssuedKey, create_key, revoke_key
from core.audit import events as ev
from core.audit.log import AuditLog, digest_with, salt
from core.authz import grant, revoke
from core.credentials import check_name, delete_credential, put_ciphertext
from core.crypto import Keyring
from core.db.engine import Database
from core.db.schema import tenants
from core.digests.destinations import Destination
from core.digests.records import (
    Digest,
    DigestStatus,
    add_digest,
    get_digest,
    remove_digest,
    set_digest_status,
)
from core.errors import InvalidInput
from core.tenants import Plan, Tenant, TenantStatus, create_tenant, set_status, update_plan


@dataclass(frozen=True, slots=True)
class Admin:
    """An operator acting on tenants.

    Attributes:
        by: Who acts, as the audit log names them (``cli:alice``).
    """

    db: Database
    audit: AuditLog
    keyring: Keyring
    by: str

    async def create_tenant(self, **tenant: Any) -> Tenant:
        """``core.tenants.create_tenant``, recorded as ``tenant.created``."""
        def work(conn: Connection) -> Tenant:
            created = create_tenant(conn, **tenant)
            self._record(conn, created.id, ev.TENANT_CREATED, {"plan": created.plan_id})
            return created

        return await self.db.run(work)

    async def set_status(self, tenant_id: str, status: TenantStatus) -> Tenant:
        """Suspend or resume a tenant, recorded as ``tenant.suspended`` or ``.resumed``."""
        def work(conn: Connection) -> Tenant:
            changed = set_status(conn, tenant_id, status)
            event = ev.TENANT_SUSPENDED if status == "suspended" else ev.TENANT_RESUMED
            self._record(conn, tenant_id, event, {})
            return changed

        return await self.db.run(work)

    async def update_plan(self, plan_id: str, **changes: Any) -> Plan:
        """``core.tenants.update_plan``, recorded as ``plan.changed`` in every tenant on it."""
        def work(conn: Connection) -> Plan:
            plan = update_plan(conn, plan_id, **changes)
            fields = {"plan": plan_id, "limits": dict(changes.get("limits") or {}),
                      "capabilities": sorted(plan.capabilities),
                      "retention_days": plan.retention_days}
            for tenant_id in conn.scalars(select(tenants.c.id)
                                          .where(tenants.c.plan_id == plan_id)):
                self._record(conn, tenant_id, ev.PLAN_CHANGED, fields)
            return plan

        return await self.db.run(work)

    async def grant(self, tenant_id: str, principal_id: str, role: str) -> bool:
        """Give a role, recorded as ``role.granted`` when it is new."""
        return await self._change_role(grant, ev.ROLE_GRANTED, tenant_id, principal_id, role)

    async def revoke(self, tenant_id: str, principal_id: str, role: str) -> bool:
        """Take a role away, recorded as ``role.revoked`` when it was held."""
        return await self._change_role(revoke, ev.ROLE_REVOKED, tenant_id, principal_id, role)

    async def _change_role(self, change: Callable[[Connection, str, str, str], bool],
                           event: str, tenant_id: str, principal_id: str, role: str) -> bool:
        def work(conn: Connection) -> bool:
            changed = change(conn, tenant_id, principal_id, role)
            if changed:
                self._record(conn, tenant_id, event, {"principal": principal_id, "role": role})
            return changed

        return await self.db.run(work)

    async def set_credential(self, tenant_id: str, name: str, secret: str) -> None:
        """Store a tool credential encrypted, recorded by name as ``credential.set``."""
        check_name(name)
        if not secret:
            raise InvalidInput(f"credential {name!r} must not be empty")
        ciphertext = self.keyring.encrypt(secret)

        def work(conn: Connection) -> None:
            put_ciphertext(conn, tenant_id, name, ciphertext)
            self._record(conn, tenant_id, ev.CREDENTIAL_SET, {"credential": name})

        await self.db.run(work)

    async def remove_credential(self, tenant_id: str, name: str) -> None:
        """Remove a tool credential, recorded by name as ``credential.removed``."""
        def work(conn: Connection) -> None:
            delete_credential(conn, tenant_id, name)
            self._record(conn, tenant_id, ev.CREDENTIAL_REMOVED, {"credential": name})

        await self.db.run(work)

    async def create_api_key(self, tenant_id: str, principal_id: str, *,
                             role: str | None = None,
                             expires_in: timedelta | None = None) -> IssuedKey:
        """Issue an API key acting as ``principal_id`` (granting it ``role`` first, if
        given), recorded by its prefix as ``api_key.created``; the key itself nowhere."""
        def work(conn: Connection) -> IssuedKey:
            if role is not None and grant(conn, tenant_id, principal_id, role):
                self._record(conn, tenant_id, ev.ROLE_GRANTED,
                             {"principal": principal_id, "role": role})
            issued = create_key(conn, tenant_id, principal_id, by=self.by,
                                now=datetime.now(UTC), expires_in=expires_in)
            self._record(conn, tenant_id, ev.API_KEY_CREATED, {
                "key": issued.key.prefix, "principal": principal_id,
                "expires_at": None if issued.key.expires_at is None
                else issued.key.expires_at.isoformat()})
            return issued

        return await self.db.run(work)

    async def revoke_api_key(self, tenant_id: str, prefix: str) -> ApiKey:
        """Revoke a key, recorded as ``api_key.revoked`` (once)."""
        def work(conn: Connection) -> ApiKey:
            key, changed = revoke_key(conn, tenant_id, prefix, now=datetime.now(UTC))
            if changed:
                self._record(conn, tenant_id, ev.API_KEY_REVOKED,
                             {"key": key.prefix, "principal": key.principal_id})
            return key

        return await self.db.run(work)

    async def add_digest(self, tenant_id: str, *, name: str, cron: str, prompt: str,
                         destination: Destination) -> Digest:
        """``core.digests.records.add_digest``, recorded as ``digest.added`` (the prompt
        as a digest, the destination by kind)."""
        def work(conn: Connection) -> Digest:
            added = add_digest(conn, tenant_id, name=name, cron=cron, prompt=prompt,
                               destination=destination)
            self._record(conn, tenant_id, ev.DIGEST_ADDED, {
                "digest": added.id, "name": added.name, "cron": added.cron,
                "destination": destination.kind,
                "prompt_digest": digest_with(salt(conn, tenant_id), added.prompt)})
            return added

        return await self.db.run(work)

    async def pause_digest(self, tenant_id: str, digest_id: str,
                           reason: str = "operator") -> bool:
        """Stop a digest firing, recorded as ``digest.paused`` when it was active."""
        return await self._set_digest(tenant_id, digest_id, "paused", reason)

    async def resume_digest(self, tenant_id: str, digest_id: str) -> bool:
        """Let a paused digest fire again, recorded as ``digest.resumed`` when it was paused.

        A suspended tenant's digest still does not fire: each firing checks the tenant.
        """
        return await self._set_digest(tenant_id, digest_id, "active", None)

    async def _set_digest(self, tenant_id: str, digest_id: str, status: DigestStatus,
                          reason: str | None) -> bool:
        def work(conn: Connection) -> bool:
            changed = set_digest_status(conn, tenant_id, digest_id, status, reason)
            if changed:
                event = ev.DIGEST_PAUSED if status == "paused" else ev.DIGEST_RESUMED
                fields = {"digest": digest_id} | ({"reason": reason} if reason else {})
                self._record(conn, tenant_id, event, fields)
            return changed

        return await self.db.run(work)

    async def remove_digest(self, tenant_id: str, digest_id: str) -> Digest:
        """Delete a digest, recorded as ``digest.removed``; its runs stay."""
        def work(conn: Connection) -> Digest:
            removed = remove_digest(conn, tenant_id, get_digest(conn, tenant_id, digest_id).id)
            self._record(conn, tenant_id, ev.DIGEST_REMOVED,
                         {"digest": removed.id, "name": removed.name})
            return removed

        return await self.db.run(work)

    def _record(self, conn: Connection, tenant_id: str, event: str,
                fields: dict[str, Any]) -> None:
        self.audit.append(conn, tenant_id, event, {"by": self.by, **fields})
