"""Bearer tokens for MCP: a tenant's API keys, checked through the SDK's token verifier.

The SDK's middleware calls ``verify_token`` for every request that sends a bearer
token; a request without one is answered 401 by the SDK, with a ``WWW-Authenticate``
header naming the protected-resource metadata. A key that is refused raises
``TokenRefused``, which ``refusal`` answers as the HTTP API would: 401 with the reason
in the challenge (malformed, unknown, revoked, expired), or 403 for a suspended tenant;
a stored key's refusal is audited in its tenant's log. The ``AccessToken`` carries the
key's tenant and principal (``claims``), so every request builds its ``TenantContext``
from its own token, never from a session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthenticationError
from starlette.requests import HTTPConnection
from starlette.responses import Response

from core.api_keys import KeyRefused, authenticate
from core.audit.log import AuditLog
from core.db.engine import Database
from core.logs import log

_DETAIL = {
    "malformed": "the bearer token is not a Tenantry API key",
    "unknown": "the API key is not known",
    "revoked": "the API key was revoked",
    "expired": "the API key has expired",
    "tenant_suspended": "the API key's tenant is suspended",
}


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


class TokenRefused(AuthenticationError):
    """A bearer token that is not a usable key; ``reason`` as ``KeyRefused`` has it."""

    def __init__(self, reason: str) -> None:
        super().__init__(_DETAIL[reason])
        self.reason = reason


def refusal(resource_metadata_url: str) -> Callable[[HTTPConnection, Exception], Response]:
    """The answer to a refused token (Starlette's ``on_error``), naming the metadata."""

    def answer(_conn: HTTPConnection, exc: Exception) -> Response:
        reason = exc.reason if isinstance(exc, TokenRefused) else "malformed"
        detail = _DETAIL[reason]
        if reason == "tenant_suspended":
            return Response(json.dumps({"error": "forbidden", "error_description": detail}),
                            status_code=403, media_type="application/json")
        challenge = (f'Bearer error="invalid_token", error_description="{detail}", '
                     f'resource_metadata="{resource_metadata_url}"')
        return Response(json.dumps({"error": "invalid_token", "error_description": detail}),
                        status_code=401, media_type="application/json",
                        headers={"WWW-Authenticate": challenge})

    return answer


class ApiKeyVerifier:
    """The SDK's ``TokenVerifier`` over Tenantry's API keys."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    async def verify_token(self, token: str) -> AccessToken | None:
        """The key's tenant and principal.

        Raises:
            TokenRefused: the key is malformed, unknown, revoked, expired or of a
                suspended tenant (logged by reason, never the key).
        """
        try:
            key = await authenticate(self.db, self.audit, token)
        except KeyRefused as refused:
            log.info("mcp bearer token refused", reason=refused.reason)
            raise TokenRefused(refused.reason) from None
        expires = None if key.expires_at is None else int(key.expires_at.timestamp())
        return AccessToken(token=key.prefix, client_id=key.prefix, scopes=[],
                           expires_at=expires, subject=key.principal_id,
                           claims={"tenant_id": key.tenant_id,
                                   "principal_id": key.principal_id})
