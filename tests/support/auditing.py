"""An audit log for tests, signed with a throwaway key."""

from __future__ import annotations

from core.audit.log import AuditLog
from core.db.engine import Database
from core.signed_note import generate_key, parse_signer_key


def audit_log(db: Database) -> AuditLog:
    """A real audit log on ``db`` with a fresh signing key."""
    signer_key, _verifier = generate_key("tenantry-test")
    return AuditLog(db, parse_signer_key(signer_key), origin_prefix="tenantry.test")
