from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from bots.cli_credentials import credentials
from bots.cli_keys import keys
from core.context import MonthlyRemaining, RunCeilings, derive_context
from core.credentials import CredentialStore, tenant_credentials
from core.crypto import KEY_FILE, Keyring, generate_key
from core.db.engine import Database
from core.settings import Settings
from tests.support.tenancy import plan, tenant_on

SECRET = "sk-live-acme-7c1d0e"


def invoke(settings: Settings, group: click.Group, *args: str, stdin: str | None = None
           ) -> Result:
    return CliRunner().invoke(group, list(args), input=stdin, obj=settings)


def key_lines(settings: Settings) -> list[str]:
    text = (settings.data_dir / KEY_FILE).read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


async def _tenants(url: str, *ids: str) -> None:
    db = Database(url)
    try:
        for tenant_id in ids:
            await tenant_on(db, tenant_id, plan())
    finally:
        await db.dispose()


async def _read(url: str, keyring: Keyring, tenant_id: str, name: str) -> str:
    db = Database(url)
    try:
        ctx = derive_context(
            tenant_id=tenant_id, principal_id="ops", principal_kind="service",
            scope=frozenset(), ceilings=RunCeilings(1, 1, 1, 1),
            remaining=MonthlyRemaining(1, 1, 1), initiator="user",
        )
        return await CredentialStore(db, keyring).get(ctx, name)
    finally:
        await db.dispose()


async def _ciphertexts(url: str, value: str | None = None) -> list[str]:
    def stored(conn: Connection) -> list[str]:
        if value is not None:
            conn.execute(update(tenant_credentials).values(ciphertext=value))
        return list(conn.scalars(select(tenant_credentials.c.ciphertext)))

    db = Database(url)
    try:
        return await db.run(stored)
    finally:
        await db.dispose()


@pytest.fixture
def tenants(settings: Settings) -> Settings:
    asyncio.run(_tenants(settings.database_url, "acme", "globex"))
    return settings


def test_generate_prints_a_fresh_fernet_key(settings: Settings) -> None:
    first = invoke(settings, keys, "generate")
    second = invoke(settings, keys, "generate")
    assert first.exit_code == 0
    assert Fernet(first.output.strip().encode())
    assert first.output != second.output
    assert not settings.data_dir.exists()


def test_set_reads_the_secret_from_stdin_and_stores_only_ciphertext(tenants: Settings) -> None:
    result = invoke(tenants, credentials, "set", "--tenant", "acme", "crm_token",
                    stdin=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert result.output.endswith("stored credential crm_token for tenant acme\n")
    [ciphertext] = asyncio.run(_ciphertexts(tenants.database_url))
    assert SECRET not in ciphertext
    keyring = Keyring.from_settings(tenants)
    assert asyncio.run(_read(tenants.database_url, keyring, "acme", "crm_token")) == SECRET
    assert stat.S_IMODE((tenants.data_dir / KEY_FILE).stat().st_mode) == 0o600


def test_the_secret_is_never_taken_from_the_command_line(tenants: Settings) -> None:
    result = invoke(tenants, credentials, "set", "--tenant", "acme", "crm_token", SECRET)
    assert result.exit_code == 2
    assert "unexpected extra argument" in result.output.lower()
    assert asyncio.run(_ciphertexts(tenants.database_url)) == []


def test_set_refuses_an_empty_secret_and_an_unknown_tenant(tenants: Settings) -> None:
    empty = invoke(tenants, credentials, "set", "--tenant", "acme", "crm_token", stdin="\n")
    assert empty.exit_code == 1 and "no secret given for 'crm_token'" in empty.output
    unknown = invoke(tenants, credentials, "set", "--tenant", "acmee", "crm_token", stdin="x")
    assert unknown.exit_code == 1 and "no tenant 'acmee'" in unknown.output


def test_list_shows_names_only_and_delete_removes_one(tenants: Settings) -> None:
    for name in ("zendesk_token", "crm_token"):
        invoke(tenants, credentials, "set", "--tenant", "acme", name, stdin=f"{SECRET}-{name}")
    invoke(tenants, credentials, "set", "--tenant", "globex", "other", stdin="globex-secret")

    listed = invoke(tenants, credentials, "list", "--tenant", "acme")
    assert listed.exit_code == 0
    assert listed.stdout == "crm_token\nzendesk_token\n"
    assert SECRET not in listed.output

    deleted = invoke(tenants, credentials, "delete", "--tenant", "acme", "zendesk_token")
    assert deleted.output.endswith("deleted credential zendesk_token of tenant acme\n")
    again = invoke(tenants, credentials, "delete", "--tenant", "acme", "zendesk_token")
    assert again.exit_code == 1 and "no credential 'zendesk_token'" in again.output
    assert invoke(tenants, credentials, "list", "--tenant", "acme").stdout == "crm_token\n"
    empty = invoke(tenants, credentials, "list", "--tenant", "initech")
    assert empty.exit_code == 0 and empty.stdout == ""
    assert "tenant initech has no credentials" in empty.stderr


def test_rotate_adds_a_key_to_the_embedded_file_and_re_encrypts(tenants: Settings) -> None:
    invoke(tenants, credentials, "set", "--tenant", "acme", "crm_token", stdin=SECRET)
    invoke(tenants, credentials, "set", "--tenant", "globex", "crm_token", stdin="globex-tok")
    [old_key] = key_lines(tenants)
    before = asyncio.run(_ciphertexts(tenants.database_url))

    result = invoke(tenants, keys, "rotate")

    assert result.exit_code == 0, result.output
    path = tenants.data_dir / KEY_FILE
    assert result.output.startswith(
        f"added a new key to {path} (now 2 keys)\n"
        "re-encrypted 2 of 2 credentials under the newest key\n"
    )
    new_key, kept = key_lines(tenants)
    assert kept == old_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    after = asyncio.run(_ciphertexts(tenants.database_url))
    assert set(after).isdisjoint(before)
    newest_only = Keyring([new_key])
    assert asyncio.run(_read(tenants.database_url, newest_only, "acme", "crm_token")) == SECRET
    assert asyncio.run(_read(tenants.database_url, newest_only, "globex", "crm_token")) == (
        "globex-tok"
    )
    assert new_key not in result.output and old_key not in result.output


def test_rotate_no_new_key_only_re_encrypts(tenants: Settings) -> None:
    invoke(tenants, credentials, "set", "--tenant", "acme", "crm_token", stdin=SECRET)
    result = invoke(tenants, keys, "rotate", "--no-new-key")
    assert result.output.startswith("re-encrypted 1 of 1 credentials under the newest key\n")
    assert len(key_lines(tenants)) == 1


def test_rotate_with_keys_in_the_setting_explains_and_re_encrypts(
        tenants: Settings, tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    before = tenants.model_copy(update={"encryption_keys": SecretStr(old)})
    invoke(before, credentials, "set", "--tenant", "acme", "crm_token", stdin=SECRET)

    after = tenants.model_copy(update={"encryption_keys": SecretStr(f"{new},{old}")})
    result = invoke(after, keys, "rotate")

    assert result.exit_code == 0, result.output
    assert "keys come from TENANTRY_ENCRYPTION_KEYS: to rotate, prepend a new key" in result.output
    assert "newest of its 2 keys" in result.output
    assert "re-encrypted 1 of 1 credentials under the newest key\n" in result.output
    assert new not in result.output and old not in result.output
    assert asyncio.run(_read(tenants.database_url, Keyring([new]), "acme", "crm_token")) == SECRET
    assert not (tenants.data_dir / "encryption.keys").exists(), "no key file beside the setting"


def test_rotate_names_credentials_no_key_can_read(tenants: Settings) -> None:
    invoke(tenants, credentials, "set", "--tenant", "acme", "crm_token", stdin=SECRET)
    asyncio.run(_ciphertexts(tenants.database_url, "gAAAAABcorrupted"))
    result = invoke(tenants, keys, "rotate", "--no-new-key")
    assert result.exit_code == 1
    assert "re-encrypted 0 credentials, but 1 cannot be decrypted" in result.output
    assert "acme/crm_token" in result.output


def test_a_key_file_others_can_read_stops_every_command(tenants: Settings) -> None:
    invoke(tenants, credentials, "set", "--tenant", "acme", "crm_token", stdin=SECRET)
    (tenants.data_dir / KEY_FILE).chmod(0o644)
    for group, args in ((keys, ["rotate"]), (credentials, ["list", "--tenant", "acme"])):
        result = invoke(tenants, group, *args)
        assert result.exit_code == 1
        assert "accessible by group or others (mode 0644)" in result.output
    assert len(key_lines(tenants)) == 1


def test_outside_the_tenantry_root_the_commands_refuse(tmp_path: Path) -> None:
    result = CliRunner().invoke(credentials, ["list", "--tenant", "acme"])
    assert result.exit_code == 2
    assert "runs under `tenantry`" in result.output
