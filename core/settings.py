"""Process-wide configuration, read once from ``TENANTRY_*`` variables and ``.env``.

Settings describe the deployment, never a tenant: tenancy travels in the
``TenantContext``. Secrets are ``SecretStr`` so that a settings object printed in a
log or a traceback shows ``**********`` instead of the value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL = "anthropic:claude-sonnet-4-5"
SANDBOX_MODEL = "sandbox"


class Settings(BaseSettings):
    """Deployment settings.

    Attributes:
        database_url: SQLAlchemy URL. The embedded default is a SQLite file in the
            working directory; ``postgresql+psycopg://...`` selects PostgreSQL.
        data_dir: Where the embedded default keeps files it creates (signing key).
        model: The model id used when a run does not name one.
        anthropic_api_key: Key for the Anthropic API; without it only the sandbox
            model can run, and only when asked for by name.
        anthropic_base_url: Override of the Anthropic endpoint (gateways, emulators).
        default_max_tokens: ``max_tokens`` asked of the model when the budget allows it.
        log_level: Minimum level of the JSON logs.
        audit_signing_key: Ed25519 signer key (``PRIVATE+KEY+name+hash+data``) that signs
            audit checkpoints. Without it the embedded default creates one in
            ``data_dir`` on first start (file mode 0600).
        audit_origin: Host-like prefix of every tenant's checkpoint origin
            (``<audit_origin>/tenants/<tenant_id>``).
        encryption_keys: Comma-separated Fernet keys for secrets at rest, newest first;
            the older ones only decrypt, so a key can be rotated.
        capability_modules: Extra ``module:factory`` paths that contribute tool
            capabilities, besides the ``tenantry.capabilities`` entry points; in the
            environment comma-separated (``pkg.tools:factory,other.mod:make``) or a
            JSON list.
        embedder: ``wordllama`` (offline, ships in its wheel) or ``hashing`` (tests).
        vector_store: ``embedded`` (the app database) or ``pinecone`` (one namespace
            per tenant; needs ``pinecone_api_key`` and ``pinecone_host``).
        vector_cache_mb: MiB of partition vectors the embedded store keeps in memory
            per process between searches (0 turns the cache off).
        digest_grace_s: How late a digest's firing may still run: missed firings
            within it coalesce into one run, older ones are skipped (and audited).
        job_key: HMAC key that signs the claim of every job on the queue (PostgreSQL:
            web and clock sign, workers verify). Every process of a deployment needs
            the same key; ``serve`` and ``worker`` refuse to queue runs without it.
    """

    model_config = SettingsConfigDict(
        env_prefix="TENANTRY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///tenantry.db"
    data_dir: Path = Path(".tenantry")
    model: str = DEFAULT_MODEL
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices(
            "TENANTRY_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"
        ),
    )
    anthropic_base_url: str | None = None
    anthropic_max_retries: int = Field(default=2, ge=0, le=10)
    default_max_tokens: int = Field(default=4096, gt=0)
    history_window: int = Field(default=20, gt=0)
    log_level: str = "INFO"
    audit_signing_key: SecretStr | None = None
    audit_origin: str = "tenantry.local"
    encryption_keys: SecretStr | None = None
    capability_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    embedder: Literal["wordllama", "hashing"] = "wordllama"
    vector_store: Literal["embedded", "pinecone"] = "embedded"
    vector_cache_mb: int = Field(default=256, ge=0)
    pinecone_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TENANTRY_PINECONE_API_KEY", "PINECONE_API_KEY")
    )
    pinecone_host: str | None = None
    digest_grace_s: int = Field(default=3600, ge=0)
    job_key: SecretStr | None = None

    @field_validator("capability_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        """Comma-separated paths, as the README writes them, or a JSON list."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]

    @property
    def is_sqlite(self) -> bool:
        """Whether the app database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")
