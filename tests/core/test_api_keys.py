from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.admin import Admin
from core.api_keys import KeyRefused, authenticate, list_keys, revoke_key, verify
from core.api_keys.tables import api_keys
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from core.errors import InvalidInput, NotFound
from core.tenants import set_status
from tests.support.auditing import audit_log
from tests.support.databases import fetch_all
from tests.support.tenancy import plan, tenant_on

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
async def admin(db: Database) -> Admin:
    for tenant_id in ("acme", "globex"):
        await tenant_on(db, tenant_id, plan())
    return Admin(db, audit_log(db), Keyring([generate_key()]), by="cli:ops")


async def check(db: Database, presented: str, now: datetime = NOW) -> str:
    """The principal the key acts as, or the refusal's reason."""
    try:
        return (await db.run(verify, presented, now=now)).principal_id
    except KeyRefused as refused:
        return refused.reason


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(db: Database,
                                                               admin: Admin) -> None:
    issued = await admin.create_api_key("acme", "svc:billing")
    assert issued.secret.startswith(f"{issued.key.prefix}_") and len(issued.secret) >= 56
    stored = await fetch_all(db, select(api_keys))
    assert len(stored) == 1 and issued.secret not in repr(stored[0])
    assert issued.secret.split("_")[-1] not in repr(stored[0])
    assert (await db.run(verify, issued.secret, now=datetime.now(UTC))).tenant_id == "acme"


async def test_every_bad_key_is_refused_with_its_reason(db: Database, admin: Admin) -> None:
    good = (await admin.create_api_key("acme", "svc:billing")).secret
    later = (await admin.create_api_key("acme", "svc:ci", expires_in=timedelta(days=1))).secret
    gone = (await admin.create_api_key("acme", "svc:old")).secret
    await admin.revoke_api_key("acme", gone[:16])
    other = (await admin.create_api_key("globex", "svc:billing")).secret
    now = datetime.now(UTC)
    altered = good[:-1] + ("A" if good[-1] != "A" else "B")

    assert await check(db, good, now) == "svc:billing"
    assert await check(db, "", now) == "malformed"
    assert await check(db, "Bearer " + good, now) == "malformed"
    assert await check(db, altered, now) == "unknown"
    assert await check(db, "tnt_000000000000_" + "A" * 43, now) == "unknown"
    assert await check(db, gone, now) == "revoked"
    assert await check(db, later, now) == "svc:ci"
    assert await check(db, later, now + timedelta(days=2)) == "expired"
    await db.run(set_status, "globex", "suspended")
    assert await check(db, other, now) == "tenant_suspended"


async def test_a_tenant_cannot_see_or_revoke_another_tenants_key(db: Database,
                                                                 admin: Admin) -> None:
    issued = await admin.create_api_key("acme", "svc:billing")
    assert await db.run(list_keys, "globex") == []
    with pytest.raises(NotFound):
        await db.run(revoke_key, "globex", issued.key.prefix, now=NOW)
    assert await check(db, issued.secret, datetime.now(UTC)) == "svc:billing"


async def test_creation_and_revocation_are_audited_by_prefix_never_the_key(
        db: Database, admin: Admin) -> None:
    issued = await admin.create_api_key("acme", "svc:billing", role="member")
    await admin.revoke_api_key("acme", issued.key.prefix)
    await admin.revoke_api_key("acme", issued.key.prefix)  # twice: recorded once
    events = list(reversed(await admin.audit.recent("acme", 50)))
    recorded = [(e.event, e.fields) for e in events if e.event.startswith(("api_key", "role"))]
    assert [name for name, _ in recorded] == ["role.granted", "api_key.created",
                                              "api_key.revoked"]
    assert all(fields["principal"] == "svc:billing" for _, fields in recorded)
    assert issued.secret not in repr(events)


async def test_bad_requests_for_keys_are_refused(admin: Admin) -> None:
    with pytest.raises(NotFound):
        await admin.create_api_key("nobody", "svc:billing")
    with pytest.raises(InvalidInput):
        await admin.create_api_key("acme", "has space")
    with pytest.raises(InvalidInput):
        await admin.create_api_key("acme", "svc:billing", expires_in=timedelta(0))


async def test_last_use_is_recorded_at_most_once_a_minute(db: Database, admin: Admin) -> None:
    issued = await admin.create_api_key("acme", "svc:billing")
    now = datetime.now(UTC)
    await authenticate(db, audit_log(db), issued.secret, now=now)
    await authenticate(db, audit_log(db), issued.secret, now=now + timedelta(seconds=30))
    [key] = await db.run(list_keys, "acme")
    assert key.last_used_at == now
    await authenticate(db, audit_log(db), issued.secret, now=now + timedelta(minutes=2))
    [key] = await db.run(list_keys, "acme")
    assert key.last_used_at == now + timedelta(minutes=2)
