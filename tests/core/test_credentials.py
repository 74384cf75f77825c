from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

import core.credentials
from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.credentials import CredentialStore, purge_credentials, tenant_credentials
from core.crypto import CryptoError, Keyring, generate_key
from core.db.engine import Database
from core.errors import InvalidInput, NotFound
from tests.support.databases import execute, fetch_all, fetch_one
from tests.support.tenancy import plan, tenant_on

SECRET = "sk-live-acme-0123456789"


def ctx_for(tenant_id: str) -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id="alice", principal_kind="user",
        scope=frozenset(), ceilings=RunCeilings(1000, 5, 60_000, 10**9),
        remaining=MonthlyRemaining(10**6, 100, 10**12), initiator="user",
    )


async def tenants(db: Database, *ids: str) -> None:
    for tenant_id in ids:
        await tenant_on(db, tenant_id, plan())


async def rows(db: Database) -> dict[tuple[str, str], str]:
    rows = await fetch_all(db, select(tenant_credentials))
    return {(r.tenant_id, r.name): r.ciphertext for r in rows}


async def corrupt(db: Database, tenant_id: str, name: str, ciphertext: str) -> None:
    await execute(db, update(tenant_credentials)
                  .where(tenant_credentials.c.tenant_id == tenant_id,
                         tenant_credentials.c.name == name)
                  .values(ciphertext=ciphertext))


async def test_a_credential_round_trips_and_only_ciphertext_is_stored(db: Database) -> None:
    await tenants(db, "acme")
    store = CredentialStore(db, Keyring([generate_key()]))
    await store.put("acme", "crm_token", SECRET)
    assert await store.get(ctx_for("acme"), "crm_token") == SECRET
    [ciphertext] = (await rows(db)).values()
    assert SECRET not in ciphertext and "acme-0123" not in ciphertext


async def test_another_tenants_context_cannot_read_it(db: Database) -> None:
    await tenants(db, "acme", "globex")
    store = CredentialStore(db, Keyring([generate_key()]))
    await store.put("acme", "crm_token", SECRET)
    with pytest.raises(NotFound, match="no credential 'crm_token' in this tenant") as info:
        await store.get(ctx_for("globex"), "crm_token")
    assert "acme" not in str(info.value)
    await store.put("globex", "crm_token", "globex-token")
    assert await store.get(ctx_for("globex"), "crm_token") == "globex-token"
    assert await store.get(ctx_for("acme"), "crm_token") == SECRET


async def test_put_replaces_the_secret_and_keeps_the_creation_time(db: Database) -> None:
    await tenants(db, "acme")
    store = CredentialStore(db, Keyring([generate_key()]))
    await store.put("acme", "crm_token", "first")
    created = (await fetch_one(db, select(tenant_credentials))).created_at
    await store.put("acme", "crm_token", "second")
    assert await store.get(ctx_for("acme"), "crm_token") == "second"
    row = await fetch_one(db, select(tenant_credentials))
    assert row.created_at == created and row.updated_at >= created
    assert row.updated_at.replace(tzinfo=UTC) <= datetime.now(UTC)


async def test_put_refuses_unknown_tenants_bad_names_and_empty_secrets(db: Database) -> None:
    await tenants(db, "acme")
    store = CredentialStore(db, Keyring([generate_key()]))
    with pytest.raises(NotFound, match="no tenant 'nobody'"):
        await store.put("nobody", "crm_token", SECRET)
    for name in ("", "CRM", "crm token", "1crm", "x" * 101):
        with pytest.raises(InvalidInput, match="credential name"):
            await store.put("acme", name, SECRET)
    with pytest.raises(InvalidInput, match="must not be empty"):
        await store.put("acme", "crm_token", "")
    assert await rows(db) == {}


async def test_names_delete_and_purge_are_per_tenant(db: Database) -> None:
    await tenants(db, "acme", "globex")
    store = CredentialStore(db, Keyring([generate_key()]))
    for tenant_id in ("acme", "globex"):
        for name in ("zendesk_token", "crm_token"):
            await store.put(tenant_id, name, f"{tenant_id}-{name}")
    assert await store.names("acme") == ["crm_token", "zendesk_token"]
    assert await store.names("nobody") == []
    assert await store.count() == 4

    await store.delete("acme", "zendesk_token")
    assert await store.names("acme") == ["crm_token"]
    with pytest.raises(NotFound, match="no credential 'zendesk_token' for tenant 'acme'"):
        await store.delete("acme", "zendesk_token")

    assert await db.run(purge_credentials, "acme") == 1
    assert await store.names("acme") == []
    assert await store.names("globex") == ["crm_token", "zendesk_token"]


async def test_a_purge_rolls_back_with_the_callers_transaction(db: Database) -> None:
    await tenants(db, "acme")
    store = CredentialStore(db, Keyring([generate_key()]))
    await store.put("acme", "crm_token", SECRET)
    def purge_then_fail(conn: Connection) -> None:
        purge_credentials(conn, "acme")
        raise RuntimeError("tenant deletion failed later")

    with pytest.raises(RuntimeError):
        await db.run(purge_then_fail)
    assert await store.names("acme") == ["crm_token"]


async def test_rotation_moves_every_row_to_the_newest_key(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.credentials, "ROTATE_BATCH", 2)
    await tenants(db, "acme", "globex", "initech")
    old, new = generate_key(), generate_key()
    before = CredentialStore(db, Keyring([old]))
    for tenant_id in ("acme", "globex", "initech"):
        await before.put(tenant_id, "crm_token", f"{tenant_id}-secret")
        await before.put(tenant_id, "zendesk_token", f"{tenant_id}-zd")
    old_rows = await rows(db)

    rotating = CredentialStore(db, Keyring([new, old]))
    assert await rotating.get(ctx_for("globex"), "crm_token") == "globex-secret"
    assert await rotating.rotate_all() == 6

    new_rows = await rows(db)
    assert all(new_rows[key] != old_rows[key] for key in old_rows)
    after = CredentialStore(db, Keyring([new]))
    for tenant_id in ("acme", "globex", "initech"):
        assert await after.get(ctx_for(tenant_id), "crm_token") == f"{tenant_id}-secret"
        assert await after.get(ctx_for(tenant_id), "zendesk_token") == f"{tenant_id}-zd"


async def test_a_corrupted_ciphertext_gives_the_clear_error(db: Database) -> None:
    await tenants(db, "acme")
    store = CredentialStore(db, Keyring([generate_key()]))
    await store.put("acme", "crm_token", SECRET)
    await corrupt(db, "acme", "crm_token", "gAAAAABtampered")
    with pytest.raises(CryptoError, match="cannot be decrypted with any configured encryption"):
        await store.get(ctx_for("acme"), "crm_token")


async def test_rotation_re_encrypts_what_it_can_and_names_what_it_cannot(db: Database) -> None:
    await tenants(db, "acme", "globex")
    old, new = generate_key(), generate_key()
    await CredentialStore(db, Keyring([old])).put("acme", "crm_token", "readable")
    foreign = CredentialStore(db, Keyring([generate_key()]))
    await foreign.put("globex", "crm_token", "lost key")

    store = CredentialStore(db, Keyring([new, old]))
    with pytest.raises(CryptoError, match=r"re-encrypted 1 credentials, but 1 cannot") as info:
        await store.rotate_all()
    assert "globex/crm_token" in str(info.value)
    assert "acme" not in str(info.value)
    assert await CredentialStore(db, Keyring([new])).get(ctx_for("acme"), "crm_token") == (
        "readable"
    )


async def test_rotating_an_empty_store_does_nothing(db: Database) -> None:
    assert await CredentialStore(db, Keyring([generate_key()])).rotate_all() == 0
