"""Who is calling: ``Authorization: Bearer <API key>`` resolved to the key it presents.

Every refusal is a problem document, and nothing else happens: a missing, malformed,
unknown, revoked or expired key is 401 with a ``WWW-Authenticate`` challenge (RFC 6750);
a key of a suspended tenant is 403. A refused key that names a stored key (revoked,
expired, suspended) is audited as ``api_key.refused`` in that key's tenant's log, by
its prefix: never the key itself.
"""

from __future__ import annotations

from aiohttp import web

from bots.api.limits import RateLimit
from bots.api.problems import problem
from bots.runtime import Runtime
from core.api_keys import ApiKey, KeyRefused
from core.api_keys import authenticate as verified

REALM = "tenantry"
LIMIT = web.AppKey("api_rate_limit", RateLimit)

_DETAIL = {
    "missing": "send the API key as 'Authorization: Bearer <key>'",
    "malformed": "the bearer token is not a Tenantry API key",
    "unknown": "the API key is not known",
    "revoked": "the API key was revoked",
    "expired": "the API key has expired",
    "tenant_suspended": "the API key's tenant is suspended",
}


def challenge(reason: str) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a 401: the realm, and why (RFC 6750 §3)."""
    if reason == "missing":
        return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
    return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", '
                                f'error_description="{_DETAIL[reason]}"'}


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: web.Request, runtime: Runtime) -> ApiKey:
    """The key the request presents, if it authorises anything now and is within its
    rate.

    Raises:
        Problem: 401 (no usable key), 403 (suspended tenant), 429 (over the rate).
    """
    token = _bearer(request)
    if token is None:
        raise problem(401, "Unauthorized", _DETAIL["missing"], headers=challenge("missing"))
    try:
        key = await verified(runtime.db, runtime.audit, token)
    except KeyRefused as refused:  # audited by ``verified`` when it names a stored key
        if refused.reason == "tenant_suspended":
            raise problem(403, "Forbidden", _DETAIL[refused.reason]) from None
        raise problem(401, "Unauthorized", _DETAIL[refused.reason],
                      headers=challenge(refused.reason)) from None
    wait = request.app[LIMIT].take(key.id)
    if wait:
        raise problem(429, "Too Many Requests",
                      f"this API key is over its rate; try again in {wait} s",
                      headers={"Retry-After": str(wait)})
    return key
