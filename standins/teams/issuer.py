"""Microsoft's token side of Teams on loopback: the channel's signing keys and a token endpoint.

Two kinds of token cross a Teams bot's boundary, and the issuer makes both with one
generated RSA-2048 key:

- inbound, the Bot Framework channel signs a JWT per activity it POSTs to the bot
  (``channel_token``): RS256, ``iss`` ``https://api.botframework.com``, ``aud`` the bot's
  app id, ``serviceurl`` the Bot Connector the bot must answer at. The Agents SDK checks it
  with PyJWT's ``PyJWKClient`` against the channel's JWKS; here that JWKS is served at
  ``jwks_url``, and the SDK is pointed at it through its key-client seam;
- outbound, the bot trades its client id and secret for an access token
  (``POST /token``, OAuth 2.0 client credentials) and sends it to the Bot Connector, which
  checks it with ``check_access_token``.

Claims follow what the services issue: a channel token carries no ``ver`` claim, so the
SDK never mistakes the channel for another agent calling (``ClaimsIdentity.is_agent_claim``);
an access token is an Entra v1 token (``ver`` 1.0, ``appid``, ``tid``), with ``azp`` too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from standins.loopback import LoopbackServer

BOT_FRAMEWORK: Final = "https://api.botframework.com"
"""The channel's token issuer, and the audience (scope without ``/.default``) of the
tokens a bot sends to the Bot Connector."""
BOT_FRAMEWORK_TENANT: Final = "d6d49420-f39b-4df7-a1dc-d59a935871db"
"""The botframework.com tenant, which issues a multi-tenant bot's access tokens."""
SDK_LEEWAY: Final = timedelta(seconds=300)
"""The clock skew the Agents SDK 1.9 forgives when it checks ``exp`` and ``nbf``."""
_DEFAULT_SCOPE_SUFFIX: Final = "/.default"
_ACCESS_TOKEN_LIFETIME: Final = timedelta(hours=1)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _thumbprint(key: rsa.RSAPublicKey) -> str:
    """The key's RFC 7638 thumbprint, used as its ``kid``: stable for the key's lifetime."""
    numbers = key.public_numbers()
    canonical = f'{{"e":"{_b64url_uint(numbers.e)}","kty":"RSA","n":"{_b64url_uint(numbers.n)}"}}'
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class TokenRefused(Exception):
    """An access token the Bot Connector must not accept; the message says why."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token the issuer handed out, and to whom."""

    client_id: str
    audience: str
    access_token: str
    expires_at: float


class TokenIssuer(LoopbackServer):
    """Signing keys (``/keys``), OpenID metadata and a token endpoint (``/token``) on loopback.

    Args:
        clients: The app registrations the token endpoint knows: client id -> secret.
        tenant_id: The Entra tenant named in access tokens (``tid``, ``iss``).
        clock: Wall-clock seconds behind every ``iat``, ``nbf`` and ``exp``.

    Tokens can be made before the server starts; only the URLs need it running.
    """

    def __init__(
        self,
        clients: Mapping[str, str],
        *,
        tenant_id: str = BOT_FRAMEWORK_TENANT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = dict(clients)
        self.tenant_id = tenant_id
        self.clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = _thumbprint(self._key.public_key())
        self.issued: list[IssuedToken] = []

    @functools.cached_property
    def _foreign_key(self) -> rsa.RSAPrivateKey:
        """A forger's key, published nowhere. Tokens it signs carry the real kid, so they
        find a key in the JWKS and fail on the signature itself, not on the lookup."""
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def jwks_url(self) -> str:
        """Where the signing keys are served, in the form ``PyJWKClient`` fetches."""
        return f"{self.base_url}/keys"

    @property
    def token_url(self) -> str:
        """The OAuth 2.0 token endpoint (client credentials grant)."""
        return f"{self.base_url}/token"

    @property
    def openid_url(self) -> str:
        """The OpenID metadata document that names the other two."""
        return f"{self.base_url}/.well-known/openid-configuration"

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: the one signing key, endorsed for Teams as the channel's are."""
        numbers = self._key.public_key().public_numbers()
        return {"keys": [{
            "kty": "RSA", "use": "sig", "kid": self.kid,
            "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e),
            "endorsements": ["msteams"],
        }]}

    def channel_token(
        self,
        app_id: str,
        service_url: str,
        *,
        issuer: str = BOT_FRAMEWORK,
        audience: str | None = None,
        lifetime: timedelta = timedelta(minutes=60),
        expired: bool = False,
        foreign_key: bool = False,
        tid: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """The JWT the channel signs for one activity POSTed to the bot ``app_id``.

        Args:
            app_id: The bot's app id; the audience unless ``audience`` is given.
            service_url: The activity's ``serviceUrl``, which the SDK matches to the claim.
            issuer: ``iss``; an Entra issuer with a GUID tenant makes the SDK bind ``tid``.
            audience: ``aud`` when it should not be the bot.
            lifetime: From issue to expiry.
            expired: Expired longer ago than the SDK's leeway forgives.
            foreign_key: Signed by a key the JWKS does not hold, under the published kid.
            tid: A ``tid`` claim, absent from the channel's own tokens.
            extra_claims: Set last, so they may replace any claim above.
        """
        now = int(self.clock())
        if expired:
            now -= int((lifetime + SDK_LEEWAY).total_seconds()) + 60
        claims: dict[str, Any] = {
            "iss": issuer, "aud": audience or app_id, "serviceurl": service_url,
            "iat": now, "nbf": now, "exp": now + int(lifetime.total_seconds()),
        }
        if tid is not None:
            claims["tid"] = tid
        claims.update(extra_claims or {})
        key = self._foreign_key if foreign_key else self._key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def access_token(
        self, client_id: str, *, audience: str = BOT_FRAMEWORK, expired: bool = False
    ) -> str:
        """Issue (and record) the access token ``POST /token`` would give ``client_id``.

        Raises:
            KeyError: ``client_id`` is not a known client.
        """
        if client_id not in self.clients:
            raise KeyError(f"unknown client id {client_id!r}")
        lifetime = int(_ACCESS_TOKEN_LIFETIME.total_seconds())
        now = int(self.clock()) - (lifetime + 600 if expired else 0)
        claims = {
            "iss": f"https://sts.windows.net/{self.tenant_id}/", "aud": audience,
            "iat": now, "nbf": now, "exp": now + lifetime, "ver": "1.0",
            "appid": client_id, "azp": client_id, "tid": self.tenant_id,
            "sub": client_id, "oid": client_id, "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})
        self.issued.append(IssuedToken(client_id, audience, token, float(now + lifetime)))
        return token

    def check_access_token(self, token: str, *, audience: str = BOT_FRAMEWORK) -> dict[str, Any]:
        """The claims of an access token this issuer issued for ``audience``, still valid.

        Raises:
            TokenRefused: Not a token of ours, wrongly signed, expired, or for another audience.
        """
        if not any(issued.access_token == token for issued in self.issued):
            raise TokenRefused("not an access token of this issuer")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key.public_key(), algorithms=["RS256"], audience=audience,
                options={"require": ["exp", "aud", "appid"]},
            )
        except jwt.PyJWTError as refused:
            raise TokenRefused(str(refused)) from refused
        return claims

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/keys", self._keys),
            web.get("/.well-known/openid-configuration", self._openid),
            web.post("/token", self._token),
        ]

    async def _keys(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    async def _openid(self, request: web.Request) -> web.Response:
        # Shaped like login.botframework.com's document, plus the token endpoint.
        return web.json_response({
            "issuer": BOT_FRAMEWORK,
            "authorization_endpoint": "https://invalid.botframework.com",
            "token_endpoint": self.token_url,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        })

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        if fields.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type",
                                "only the client_credentials grant is supported")
        client_id = fields.get("client_id", "")
        if client_id not in self.clients:
            return _oauth_error(401, "invalid_client", f"application {client_id!r} not found")
        if fields.get("client_secret") != self.clients[client_id]:
            return _oauth_error(401, "invalid_client", "invalid client secret provided")
        scope = fields.get("scope", "")
        if not scope.endswith(_DEFAULT_SCOPE_SUFFIX):
            return _oauth_error(400, "invalid_scope",
                                "a client credentials scope must end in /.default")
        token = self.access_token(client_id, audience=scope.removesuffix(_DEFAULT_SCOPE_SUFFIX))
        lifetime = int(_ACCESS_TOKEN_LIFETIME.total_seconds())
        return web.json_response({
            "token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": token,
        })


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    """An RFC 6749 error answer, as Entra gives it."""
    return web.json_response({"error": error, "error_description": description}, status=status)
