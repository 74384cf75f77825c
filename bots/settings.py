"""How ``tenantry serve`` listens and runs its work, from ``TENANTRY_*`` variables or ``.env``.

These describe the server process, not the agent core (``core.settings``) nor a
transport (``bots.slack.settings``), so they live beside the web app that reads them.
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RunsIn = Literal["auto", "process", "workers"]


class ServerSettings(BaseSettings):
    """Server settings.

    Attributes:
        public_url: The deployment's public base URL (install links, OAuth redirects,
            manifests).
        host, port: Where ``tenantry serve`` listens.
        runs_in: Where the runs of accepted requests execute: ``process`` (this one, in
            its executor), ``workers`` (queued for ``tenantry worker``; PostgreSQL only),
            or ``auto``: the workers on PostgreSQL, this process on SQLite.
        runs_per_tenant: Runs of one tenant executing at once in this process; with
            the workers, across the whole deployment (every web and clock process
            must agree on it: it names the tenant's places on the queue).
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
    runs_in: RunsIn = "auto"
    runs_per_tenant: int = Field(default=4, gt=0)
    runs_per_process: int = Field(default=16, gt=0)
    run_admission_max_delay_ms: int = Field(default=250, ge=0)
    upkeep_interval_s: float = Field(default=60, gt=0)
    retention_interval_s: float = Field(default=3600, gt=0)
    digest_reload_s: float = Field(default=5, gt=0)

    @field_validator("public_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        """Slack and Teams call a deployment over HTTPS only; plain HTTP is for loopback."""
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
            return value
        raise ValueError(f"must be an https:// URL (http:// only on loopback), got {value!r}")


class WorkerSettings(BaseSettings):
    """How ``tenantry worker`` executes jobs, from ``TENANTRY_WORKER_*`` variables or ``.env``.

    Attributes:
        concurrency: Jobs (runs) one worker process executes at once.
        metrics_host, metrics_port: Where it serves ``/metrics`` and ``/healthz``
            (port 0: not served).
        heartbeat_s: How often it tells the queue it is alive.
        stalled_after_s: A worker silent for this long is dead: its jobs are retried
            and its runs' leases broken, so they resume from their checkpoints.
        sweep_s: How often a worker looks for the jobs of dead workers.
        shutdown_grace_s: On SIGTERM, how long running jobs may finish before they are
            stopped (their runs stay resumable and their jobs go back to the queue).
        poll_s: Longest wait between two looks at the queue. New jobs are announced
            at once (PostgreSQL's LISTEN/NOTIFY); a job waiting for one of its
            tenant's places is found by looking, within ``poll_s`` of it freeing.
    """

    model_config = SettingsConfigDict(
        env_prefix="TENANTRY_WORKER_", env_file=".env", env_file_encoding="utf-8",
        extra="ignore"
    )

    concurrency: int = Field(default=8, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9400, ge=0, le=65535)
    heartbeat_s: float = Field(default=10, gt=0)
    stalled_after_s: float = Field(default=30, gt=0)
    sweep_s: float = Field(default=15, gt=0)
    shutdown_grace_s: float = Field(default=10, ge=0)
    poll_s: float = Field(default=1, gt=0)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
