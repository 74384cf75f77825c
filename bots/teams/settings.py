"""The Teams bot's settings, from ``TENANTRY_TEAMS_*`` variables or ``.env``.

Teams is on with its three credentials and off with none; a partial set is a mistake
that ``tenantry serve`` refuses, naming what is missing. Anonymous mode (no token
checks at all) exists only for local development: it must be asked for by name, and
it is refused unless the server listens on loopback.

Three settings re-point what the SDK trusts and calls, so that a local token issuer
and a local Bot Connector can stand in for Microsoft's (the demo, the tests). They
are logged at start; leave them unset in production.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigurationError

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class TeamsSettings(BaseSettings):
    """Teams settings; the secret is a ``SecretStr``, so a printed settings object hides it.

    Attributes:
        app_id: The bot's Microsoft App ID (the Entra app registration's client id).
        app_password: That app registration's client secret.
        app_tenant_id: The Entra tenant the app registration lives in: a single-tenant
            Azure Bot takes its outbound tokens there, and tokens issued by that
            tenant (or by the Bot Framework) are the only Entra tokens accepted.
        allow_anonymous: Accept requests without a token and send replies without
            one. Local development only; refused unless the server listens on loopback.
        jwks_url: Where to fetch the token signing keys instead of Microsoft's
            (a local token issuer). Local and test use only.
        token_url: An OAuth 2.0 token endpoint to get outbound tokens from with the app
            id and password (client credentials), instead of Entra. Local and test use.
        connector_hosts: ``host[:port]`` entries that replace Microsoft's Bot
            Connector hosts as the only places replies may go; plain ``http`` and
            loopback addresses are allowed for them. Local and test use only.
    """

    model_config = SettingsConfigDict(
        env_prefix="TENANTRY_TEAMS_", env_file=".env", env_file_encoding="utf-8",
        extra="ignore",
    )

    app_id: str | None = None
    app_password: SecretStr | None = None
    app_tenant_id: str | None = None
    allow_anonymous: bool = False
    jwks_url: str | None = None
    token_url: str | None = None
    connector_hosts: Annotated[list[str], NoDecode] = []

    @field_validator("connector_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """``TENANTRY_TEAMS_CONNECTOR_HOSTS`` is a comma-separated list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def missing(self) -> list[str]:
        """Which credentials are missing, by variable name."""
        names = {
            "TENANTRY_TEAMS_APP_ID": self.app_id,
            "TENANTRY_TEAMS_APP_PASSWORD": self.app_password,
            "TENANTRY_TEAMS_APP_TENANT_ID": self.app_tenant_id,
        }
        return [name for name, value in names.items() if not value]

    def overrides(self) -> dict[str, object]:
        """The local stand-in settings in use, for the start-up log."""
        return {name: value for name, value in (
            ("jwks_url", self.jwks_url), ("token_url", self.token_url),
            ("connector_hosts", self.connector_hosts)) if value}

    def enabled(self, *, listening_on: str = "127.0.0.1") -> bool:
        """Whether Teams is on: all three credentials (or anonymous mode), or none.

        Args:
            listening_on: The server's listening host; anonymous mode needs loopback.

        Raises:
            ConfigurationError: only some credentials are set, an id is not a GUID, or
                anonymous mode is asked for on a host other than loopback.
        """
        if self.allow_anonymous:
            if listening_on not in ("127.0.0.1", "::1", "localhost"):
                raise ConfigurationError(
                    "TENANTRY_TEAMS_ALLOW_ANONYMOUS is for local development only; it is "
                    f"refused while the server listens on {listening_on!r}")
            return True
        missing = self.missing()
        if len(missing) == 3:
            return False
        if missing:
            raise ConfigurationError(
                f"Teams is half configured; missing: {', '.join(missing)} (set all three to "
                "enable Teams, or none to run without it)")
        for name, value in (("TENANTRY_TEAMS_APP_ID", self.app_id),
                            ("TENANTRY_TEAMS_APP_TENANT_ID", self.app_tenant_id)):
            if not _GUID.match(value or ""):
                raise ConfigurationError(f"{name} must be a GUID, got {value!r}")
        return True
