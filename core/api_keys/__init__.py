"""API keys: how a tenant's own services and people's MCP clients prove who they are.

A key is shown once, at creation: ``tnt_<id>_<secret>``, where ``<id>`` (12 hex
characters) names the row and ``<secret>`` is 32 random bytes, base64url. Only the
SHA-256 of the whole key is stored (the secret has 256 bits of entropy, so a slow hash
adds nothing), with the tenant, the principal it acts as, its creator, its expiry and
when it was last used. ``authenticate`` is the one way in for every transport: it
finds the row by id, compares the hash in constant time, and refuses a revoked or
expired key, or one of a suspended tenant, with a reason the transport turns into 401
or 403.
"""

from core.api_keys.keys import (
    ApiKey,
    IssuedKey,
    KeyRefused,
    create_key,
    list_keys,
    purge_keys,
    revoke_key,
    touch,
    verify,
)
from core.api_keys.presented import authenticate

__all__ = ["ApiKey", "IssuedKey", "KeyRefused", "authenticate", "create_key", "list_keys",
           "purge_keys", "revoke_key", "touch", "verify"]
