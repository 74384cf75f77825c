"""A presented key checked as every transport checks it: verified, its use noted, and a
refusal of a stored key audited in that key's tenant's log (by prefix, never the key)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.api_keys.keys import TOUCH_EVERY, ApiKey, KeyRefused, touch, verify
from core.audit import events
from core.audit.log import AuditLog
from core.db.engine import Database


async def authenticate(db: Database, audit: AuditLog, presented: str, *,
                       now: datetime | None = None) -> ApiKey:
    """The key ``presented`` stands for, if it authorises anything ``now`` (the clock's).

    The check is a read; the key's ``last_used_at`` is written in a transaction of its
    own, at most once a minute, so a busy key neither waits for nor holds a write lock.

    Raises:
        KeyRefused: malformed, unknown, revoked, expired, or its tenant is suspended.
    """
    now = now or datetime.now(UTC)
    try:
        key = await db.run(verify, presented, now=now)
    except KeyRefused as refused:
        if refused.key is not None:
            await audit.record(refused.key.tenant_id, events.API_KEY_REFUSED, {
                "key": refused.key.prefix, "principal": refused.key.principal_id,
                "reason": refused.reason,
            })
        raise
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        await db.run(touch, key, now=now)
    return key
