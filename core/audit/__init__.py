"""The per-tenant verifiable audit log.

Every agent run writes what it did (started, tool invoked or refused, completed,
halted) and every deletion to its tenant's own append-only log. Each log is an
RFC 6962 Merkle tree whose heads are signed as C2SP checkpoints with Ed25519, so a
tenant or an auditor can check offline that nothing was changed, removed or slipped
in. Events hold no secrets and no tenant content: content appears only as salted
digests, and deleting a tenant's salt (``shred``) unlinks them for good.

Modules: ``events`` (event types, the canonical encoding), ``log`` (``AuditLog``),
``verify`` (checking, proofs), ``bundle`` (export, offline check),
``keys`` (the signing key), ``store`` and ``tables`` (storage).
"""

from __future__ import annotations

from core.audit.bundle import verify_bundle
from core.audit.events import (
    DOCUMENT_INGESTED,
    MEMORY_DELETED,
    RUN_COMPLETED,
    RUN_HALTED,
    RUN_REFUSED,
    RUN_STARTED,
    TENANT_PURGED,
    TOOL_INVOKED,
    TOOL_REFUSED,
    TOOL_UNCONFIRMED,
    AuditError,
    AuditEvent,
    canonical_bytes,
    canonical_json,
)
from core.audit.keys import load_keys, rotate_keys
from core.audit.log import AuditLog
from core.audit.verify import InclusionProof, StoredCheckpoint, VerifyReport

__all__ = [
    "DOCUMENT_INGESTED",
    "MEMORY_DELETED",
    "RUN_COMPLETED",
    "RUN_HALTED",
    "RUN_REFUSED",
    "RUN_STARTED",
    "TENANT_PURGED",
    "TOOL_INVOKED",
    "TOOL_REFUSED",
    "TOOL_UNCONFIRMED",
    "AuditError",
    "AuditEvent",
    "AuditLog",
    "InclusionProof",
    "StoredCheckpoint",
    "VerifyReport",
    "canonical_bytes",
    "canonical_json",
    "load_keys",
    "rotate_keys",
    "verify_bundle",
]
