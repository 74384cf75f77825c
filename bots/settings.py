"""How ``tenantry serve`` listens and runs its work, from ``TENANTRY_*`` variables or ``.env``.

These describe the server process, not the agent core (``core.settings``) nor a
transport (``bots.slack.settings``), so they live beside the web app that reads them.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Server settings.

    Attributes:
        public_url: The deployment's public base URL (install links, OAuth redirects,
            manifests).
        host, port: Where ``tenantry serve`` listens.
        runs_per_tenant: Runs of one tenant executing at once in this process.
        runs_per_process: Runs executing at once in this process, all tenants together:
            by default four tenants at their full ``runs_per_tenant``, and fewer than
            the PostgreSQL connection pool holds (30), so runs leave connections for
            the requests.
        run_admission_max_delay_ms: The longest a run waits for the web process to
            finish the requests in flight (so that their acknowledgements do not wait
            for it) before it starts anyway.
        upkeep_interval_s: How often the server signs unsigned audit tails and resumes
            runs whose process died (their lease expired).
        retention_interval_s: How often it applies the plans' retention.
        digest_reload_s: How often the digest clock checks whether schedules changed
            (one cheap query) and reloads them if they did.
    """

    model_config = SettingsConfigDict(
        env_prefix="TENANTRY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    public_url: str = "http://127.0.0.1:3000"
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    runs_per_tenant: int = Field(default=4, gt=0)
    runs_per_process: int = Field(default=16, gt=0)
    run_admission_max_delay_ms: int = Field(default=250, ge=0)
    upkeep_interval_s: float = Field(default=60, gt=0)
    retention_interval_s: float = Field(default=3600, gt=0)
    digest_reload_s: float = Field(default=5, gt=0)
