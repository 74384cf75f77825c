"""Where ``tenantry serve`` serves MCP, from ``TENANTRY_MCP_*``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class McpSettings(BaseSettings):
    """The MCP server's settings.

    Attributes:
        enabled: Whether ``tenantry serve`` serves MCP at all.
        host, port: Where the MCP server listens (port 0: any free port); clients
            connect to ``http://host:port/mcp`` unless a proxy in front says otherwise.
        public_url: The base URL clients reach it at (behind a proxy, the proxy's);
            it names the protected resource in its metadata. Defaults to where it
            listens.
    """

    model_config = SettingsConfigDict(env_prefix="TENANTRY_MCP_", env_file=".env",
                                      extra="ignore")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=3001, ge=0, le=65535)
    public_url: str | None = None
