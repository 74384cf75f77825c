"""Whom the Teams transport trusts, and how it talks back: the SDK's parts, hardened.

Inbound, the Agents SDK checks each request's token (signature from Microsoft's keys,
audience = our app id). Beyond its defaults, Tenantry turns on:

- ``VALIDATE_ISSUER``: the token's issuer must be the Bot Framework or the bot's own
  Entra tenant; a correctly signed token from a foreign Entra tenant, with our app id
  as audience, is refused (the SDK accepts it by default).
- ``OutboundHostValidator(enabled=True)``: the activity's ``serviceUrl`` must be a
  Microsoft host over https and match the token's ``serviceurl`` claim, so replies
  (which carry our bearer token) go nowhere else (by default the SDK only logs it).

Outbound, tokens come from Entra through MSAL (the SDK's connection manager).

For local use three settings re-point these (``TeamsSettings``): the signing keys'
location (``trust_jwks``: the SDK keeps one process-wide JWKS client manager, the only
seam it has), the token endpoint (client credentials against a local issuer instead of
MSAL, which accepts only https authorities) and the allowed Bot Connector hosts.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.core import (
    AccessTokenProviderBase,
    AgentAuthConfiguration,
    AnonymousTokenProvider,
    Connections,
    OutboundHostValidator,
)
from microsoft_agents.hosting.core.authorization import AuthTypes
from microsoft_agents.hosting.core.authorization.connection_manager import ConnectionManager
from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator
from microsoft_agents.hosting.core.authorization.jwt.jwt_token_validator import (
    _JwkClientCacheEntry,
    _JwkClientManager,
)
from yarl import URL

from bots.teams.settings import TeamsSettings
from core.errors import ConfigurationError

SERVICE_CONNECTION = "SERVICE_CONNECTION"
"""The connection name the SDK looks up for the bot's own outbound tokens."""

_SDK_JWKS = JwtTokenValidator._jwk_client_manager


def auth_configuration(settings: TeamsSettings) -> AgentAuthConfiguration:
    """The SDK's view of the bot's identity, with the issuer check turned on."""
    return AgentAuthConfiguration(
        auth_type=AuthTypes.client_secret,
        client_id=settings.app_id,
        tenant_id=settings.app_tenant_id,
        client_secret=(settings.app_password.get_secret_value()
                       if settings.app_password is not None else None),
        anonymous_allowed=settings.allow_anonymous,
        validate_issuer=True,
    )


def connections(settings: TeamsSettings, config: AgentAuthConfiguration) -> Connections:
    """Where outbound tokens come from: Entra (MSAL), a local endpoint, or none (anonymous)."""
    configurations = {SERVICE_CONNECTION: config}
    if settings.token_url:
        token_url = settings.token_url
        return ConnectionManager(
            provider_factory=lambda conf: ClientCredentialsTokens(conf, token_url),
            connections_configurations=configurations)
    if settings.allow_anonymous and not settings.app_id:
        return ConnectionManager(provider_factory=lambda conf: AnonymousTokenProvider(),
                                 connections_configurations=configurations)
    return MsalConnectionManager(connections_configurations=configurations)


class ClientCredentialsTokens(AccessTokenProviderBase):
    """Outbound tokens from an OAuth 2.0 token endpoint by client credentials, cached.

    For a local token issuer only (``TENANTRY_TEAMS_TOKEN_URL``); in production MSAL
    gets them from Entra.
    """

    def __init__(self, config: AgentAuthConfiguration, token_url: str) -> None:
        self._config = config
        self._url = token_url
        self._cached: dict[str, tuple[str, float]] = {}

    @property
    def configuration(self) -> AgentAuthConfiguration:
        """The connection this provider serves."""
        return self._config

    async def get_access_token(self, resource_url: str, scopes: list[str],
                               force_refresh: bool = False) -> str:
        """A bearer token for ``scopes`` (or ``resource_url/.default``)."""
        scope = " ".join(scopes) or f"{resource_url.rstrip('/')}/.default"
        held = self._cached.get(scope)
        if held is not None and not force_refresh and held[1] > time.monotonic():
            return held[0]
        form = {"grant_type": "client_credentials", "client_id": self._config.CLIENT_ID or "",
                "client_secret": self._config.CLIENT_SECRET or "", "scope": scope}
        async with aiohttp.ClientSession() as session, session.post(self._url, data=form) as got:
            body: dict[str, Any] = await got.json()
            if got.status != 200 or not isinstance(body.get("access_token"), str):
                raise PermissionError(f"token endpoint refused: {body.get('error', got.status)}")
        token = str(body["access_token"])
        self._cached[scope] = (token, time.monotonic() + int(body.get("expires_in", 300)) - 60)
        return token

    def get_token_credential(self) -> Any:
        """Not offered: nothing in Tenantry asks for an Azure credential object."""
        raise NotImplementedError("a local token endpoint offers no Azure credential")

    # User sign-in and agentic identities are not part of Tenantry's Teams bot.
    async def acquire_token_on_behalf_of(self, scopes: list[str], user_assertion: str) -> str:
        raise NotImplementedError("on-behalf-of tokens are not offered locally")

    async def get_agentic_application_token(self, tenant_id: str,
                                            agent_app_instance_id: str) -> str | None:
        raise NotImplementedError("agentic tokens are not offered locally")

    async def get_agentic_instance_token(self, tenant_id: str,
                                         agent_app_instance_id: str) -> tuple[str, str]:
        raise NotImplementedError("agentic tokens are not offered locally")

    async def get_agentic_user_token(self, tenant_id: str, agent_app_instance_id: str,
                                     agentic_user_id: str, scopes: list[str]) -> str | None:
        raise NotImplementedError("agentic tokens are not offered locally")


class LocalConnectorHosts(OutboundHostValidator):
    """Replies go only to the listed ``host[:port]``s, over http or https (local use)."""

    def __init__(self, hosts: list[str]) -> None:
        super().__init__(enabled=True, include_default_microsoft_hosts=False)
        self._listed = {host.casefold() for host in hosts}

    def is_allowed(self, url: str | URL) -> bool:
        """Whether ``url`` is an http(s) URL on a listed host (port included if listed)."""
        try:
            parsed = URL(str(url))
        except ValueError:
            return False
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.user:
            return False
        host = parsed.host.casefold()
        return host in self._listed or f"{host}:{parsed.port}" in self._listed


def host_validator(settings: TeamsSettings) -> OutboundHostValidator:
    """Microsoft's Bot Connector hosts over https, or exactly the configured local ones."""
    if settings.connector_hosts:
        return LocalConnectorHosts(settings.connector_hosts)
    return OutboundHostValidator(enabled=True)


class _RepointedKeys(_JwkClientManager):
    """The SDK's JWKS client manager, fetching every key set from one local URL.

    ``asked`` keeps the URIs the SDK chose, so a test can check that the seam still
    sees the SDK's own choice (the canary for an SDK upgrade).
    """

    def __init__(self, url: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.url = url
        self.asked: list[str] = []

    def _get_jwk_client(self, jwks_uri: str) -> _JwkClientCacheEntry:
        self.asked.append(jwks_uri)
        return super()._get_jwk_client(self.url)


def trust_jwks(url: str | None) -> None:
    """Fetch the token signing keys from ``url`` instead of Microsoft's (``None``: Microsoft's).

    Raises:
        ConfigurationError: ``url`` is not an http(s) URL.
    """
    if url is None:
        JwtTokenValidator._jwk_client_manager = _SDK_JWKS
        return
    if URL(url).scheme not in ("http", "https"):
        raise ConfigurationError(f"TENANTRY_TEAMS_JWKS_URL must be an http(s) URL, got {url!r}")
    JwtTokenValidator._jwk_client_manager = _RepointedKeys(url)
