"""Bearer tokens for MCP: a tenant's API keys, checked through the SDK's token verifier.

The SDK's middleware calls ``verify_token`` for every request and answers 401 with a
``WWW-Authenticate`` header naming the protected-resource metadata when it returns
``None``. The ``AccessToken`` carries the key's tenant and principal (``claims``), so
every request builds its ``TenantContext`` from its own token, never from a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mcp.server.auth.provider import AccessToken

from core.api_keys import KeyRefused, verify
from core.db.engine import Database
from core.logs import log


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an MCP request acts for: the tenant and principal of its key."""

    tenant_id: str
    principal_id: str

    @classmethod
    def of(cls, token: AccessToken) -> Caller:
        """The caller a verified token names."""
        claims = token.claims or {}
        return cls(str(claims["tenant_id"]), str(claims["principal_id"]))


class ApiKeyVerifier:
    """The SDK's ``TokenVerifier`` over Tenantry's API keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def verify_token(self, token: str) -> AccessToken | None:
        """The key's tenant and principal, or ``None`` (401) for a key that is malformed,
        unknown, revoked, expired or of a suspended tenant; the reason is logged, never
        the key."""
        try:
            key = await self.db.run(verify, token, now=datetime.now(UTC))
        except KeyRefused as refused:
            log.info("mcp bearer token refused", reason=refused.reason)
            return None
        expires = None if key.expires_at is None else int(key.expires_at.timestamp())
        return AccessToken(token=key.prefix, client_id=key.prefix, scopes=[],
                           expires_at=expires, subject=key.principal_id,
                           claims={"tenant_id": key.tenant_id,
                                   "principal_id": key.principal_id})
