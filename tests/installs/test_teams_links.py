from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from core.audit.events import WORKSPACE_LINKED, WORKSPACE_UNLINKED
from core.audit.log import AuditLog
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from core.db.schema import metadata
from core.errors import Conflict, InvalidInput, NotFound
from core.tenants import set_status
from installs.link_tokens import TEAMS_LINK_CODE, InstallLinkError, install_link_nonces
from installs.links import issue_install_link, redeem
from installs.purge import purge_workspaces
from installs.teams_conversations import (
    conversation_reference,
    first_activity,
    remember_conversation,
)
from installs.teams_links import (
    TeamsLink,
    check_link_code,
    issue_link_code,
    list_teams_links,
    purge_teams,
    record_pending,
    redeem_link_code,
    resolve_teams,
    revoke_teams,
)
from tests.support.auditing import audit_log
from tests.support.databases import execute, fetch_all

DAY = timedelta(days=1)
E1 = "0a1b2c3d-0000-4000-8000-00000000e001"
E2 = "0a1b2c3d-0000-4000-8000-00000000e002"
ADMIN = f"teams:{E1}:5f0c1a2b-0000-4000-8000-0000000000a1"
TEAMS_TABLES = ("teams_tenants", "teams_conversations", "teams_activities",
                "install_link_nonces")


@pytest.fixture
def audit(db: Database) -> AuditLog:
    return audit_log(db)


async def code_for(db: Database, keyring: Keyring, tenant_id: str = "acme") -> str:
    return await db.run(issue_link_code, keyring, tenant_id, DAY)


async def link_with(db: Database, audit: AuditLog, keyring: Keyring, code: str,
                    entra: str = E1, by: str = ADMIN) -> TeamsLink:
    return await db.run(redeem_link_code, audit, keyring, code, entra, by)


async def reason_of(db: Database, audit: AuditLog, keyring: Keyring, code: str,
                    entra: str = E1) -> str:
    with pytest.raises(InstallLinkError) as caught:
        await link_with(db, audit, keyring, code, entra)
    return caught.value.reason


async def events_of(audit: AuditLog, tenant_id: str, event: str) -> list[dict[str, Any]]:
    return [dict(e.fields) for e in reversed(await audit.recent(tenant_id, 50, events=[event]))]


async def unspent(db: Database) -> int:
    return len(await fetch_all(db, select(install_link_nonces.c.nonce).where(
        install_link_nonces.c.used_at.is_(None))))


async def test_a_link_code_links_an_entra_tenant_once_and_is_audited(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    code = await code_for(acme, keyring)
    assert "acme" not in code and len(code) < 300

    made = await link_with(acme, audit, keyring, f"  {code}\n", E1.upper())
    assert (made.entra_tenant_id, made.tenant_id, made.status) == (E1, "acme", "active")
    assert made.active and made.linked_by == ADMIN and made.linked_at is not None
    assert await reason_of(acme, audit, keyring, code, E2) == "already_used"
    assert await events_of(audit, "acme", WORKSPACE_LINKED) == [
        {"platform": "teams", "entra_tenant_id": E1, "by": ADMIN}]

    again = await code_for(acme, keyring)
    assert await reason_of(acme, audit, keyring, again) == "already_linked"
    assert await acme.run(resolve_teams, E1) == made
    assert len(await events_of(audit, "acme", WORKSPACE_LINKED)) == 1
    assert await unspent(acme) == 1, "it can still link another of the customer's tenants"
    assert (await link_with(acme, audit, keyring, again, E2)).tenant_id == "acme"


async def test_checking_a_code_names_its_tenant_and_spends_nothing(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    code = await code_for(acme, keyring, "globex")
    assert await acme.run(check_link_code, keyring, f" {code} ") == "globex"
    assert await acme.run(check_link_code, keyring, code) == "globex"
    await link_with(acme, audit, keyring, code)
    with pytest.raises(InstallLinkError, match="already used"):
        await acme.run(check_link_code, keyring, code)


async def test_expired_forged_and_slack_links_are_refused_as_codes(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    code = await code_for(acme, keyring)
    future = int((datetime.now(UTC) + DAY).timestamp())
    install_url = await acme.run(issue_install_link, keyring, "acme", "https://t.example", DAY)
    [install_link] = parse_qs(urlsplit(install_url).query)["link"]
    candidates = [
        code[:40] + ("A" if code[40] != "A" else "B") + code[41:],
        "",
        "x" * 5000,
        install_link,
        Keyring([generate_key()]).encrypt(json.dumps(
            {"p": TEAMS_LINK_CODE.tag, "t": "acme", "n": "n", "e": future})),
    ]
    for candidate in candidates:
        assert await reason_of(acme, audit, keyring, candidate) == "bad_signature"
    with pytest.raises(InstallLinkError, match="link code was not issued"):
        await link_with(acme, audit, keyring, install_link)
    with pytest.raises(InstallLinkError) as caught:
        await acme.run(redeem, keyring, code)
    assert caught.value.reason == "bad_signature", "a code is no install link either"
    assert await acme.run(redeem, keyring, install_link) == "acme"

    await execute(acme, update(install_link_nonces).values(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert await reason_of(acme, audit, keyring, code) == "expired"
    never = keyring.encrypt(json.dumps(
        {"p": TEAMS_LINK_CODE.tag, "t": "acme", "n": "never", "e": future}))
    assert await reason_of(acme, audit, keyring, never) == "unknown_link"
    assert await acme.run(resolve_teams, E1) is None


async def test_issuing_and_redeeming_refuse_unknown_and_suspended_tenants(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    with pytest.raises(NotFound):
        await code_for(acme, keyring, "initech")
    for ttl in (timedelta(0), 31 * DAY):
        with pytest.raises(InvalidInput, match="link code ttl"):
            await acme.run(issue_link_code, keyring, "acme", ttl)
    code = await code_for(acme, keyring, "globex")
    await acme.run(set_status, "globex", "suspended")
    with pytest.raises(InstallLinkError, match="suspended"):
        await code_for(acme, keyring, "globex")
    assert await reason_of(acme, audit, keyring, code) == "tenant_suspended"
    await acme.run(set_status, "globex", "active")
    assert (await link_with(acme, audit, keyring, code)).tenant_id == "globex"
    with pytest.raises(InvalidInput, match="GUID"):
        await link_with(acme, audit, keyring, await code_for(acme, keyring), "{" + E2 + "}")


async def test_a_conflict_leaves_the_code_unspent_even_for_a_caller_that_commits(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    await link_with(acme, audit, keyring, await code_for(acme, keyring, "globex"))
    code = await code_for(acme, keyring)
    with pytest.raises(Conflict, match="linked to tenant 'globex'"):
        await link_with(acme, audit, keyring, code)

    def try_and_carry_on(conn: Connection) -> str:
        try:
            redeem_link_code(conn, audit, keyring, code, E1, ADMIN)
        except Conflict:
            return "refused"
        return "linked"

    assert await acme.run(try_and_carry_on) == "refused"
    assert await unspent(acme) == 1
    assert (await acme.run(resolve_teams, E1)) == await acme.run(resolve_teams, E1.upper())
    assert (await link_with(acme, audit, keyring, code, E2)).tenant_id == "acme"
    assert [e["entra_tenant_id"] for e in await events_of(audit, "acme", WORKSPACE_LINKED)] == [E2]


async def test_one_code_redeemed_at_once_by_two_entra_tenants_links_exactly_one(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    code = await code_for(acme, keyring)
    outcomes = await asyncio.gather(
        *(link_with(acme, audit, keyring, code, entra) for entra in (E1, E2)),
        return_exceptions=True)
    won = [o for o in outcomes if isinstance(o, TeamsLink)]
    lost = [o for o in outcomes if isinstance(o, InstallLinkError)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].reason == "already_used"
    assert [ln.entra_tenant_id for ln in await acme.run(list_teams_links)] == [
        won[0].entra_tenant_id]


async def test_two_tenants_codes_at_once_for_one_entra_tenant_link_one_and_spend_one(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    codes = [await code_for(acme, keyring, t) for t in ("acme", "globex")]
    outcomes = await asyncio.gather(*(link_with(acme, audit, keyring, c) for c in codes),
                                    return_exceptions=True)
    assert sum(isinstance(o, TeamsLink) for o in outcomes) == 1
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1
    assert await unspent(acme) == 1


async def test_pending_active_revoked_and_pending_again(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    seen = await acme.run(record_pending, E1.upper())
    assert (seen.entra_tenant_id, seen.tenant_id, seen.status) == (E1, None, "pending")
    assert not seen.active and seen.linked_at is None and seen.first_seen_at.tzinfo
    assert await acme.run(record_pending, E1) == seen

    linked = await link_with(acme, audit, keyring, await code_for(acme, keyring))
    assert linked.active and linked.first_seen_at == seen.first_seen_at
    assert await acme.run(record_pending, E1) == linked, "a reinstall keeps an active link"

    revoked = await acme.run(revoke_teams, audit, E1, "uninstalled")
    assert revoked is not None and revoked.status == "revoked" and revoked.tenant_id == "acme"
    assert revoked.revoked_at is not None
    assert await acme.run(revoke_teams, audit, E1, "uninstalled") == revoked
    assert await events_of(audit, "acme", WORKSPACE_UNLINKED) == [
        {"platform": "teams", "entra_tenant_id": E1, "reason": "uninstalled"}]

    again = await acme.run(record_pending, E1)
    assert (again.status, again.tenant_id, again.linked_by) == ("pending", None, None)
    assert again.revoked_at == revoked.revoked_at
    relinked = await link_with(acme, audit, keyring, await code_for(acme, keyring, "globex"))
    assert relinked.tenant_id == "globex" and relinked.revoked_at is None
    assert len(await events_of(audit, "globex", WORKSPACE_LINKED)) == 1

    await acme.run(record_pending, E2)
    unlinked = await acme.run(revoke_teams, audit, E2, "uninstalled")
    assert unlinked is not None and (unlinked.status, unlinked.tenant_id) == ("revoked", None)
    assert await acme.run(revoke_teams, audit, "0" * 8 + E2[8:], "operator") is None
    assert len(await events_of(audit, "acme", WORKSPACE_UNLINKED)) == 1
    listed = await acme.run(list_teams_links)
    assert [(ln.entra_tenant_id, ln.status) for ln in listed] == [
        (E1, "active"), (E2, "revoked")]


async def test_an_operator_unlink_names_the_operator(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    await link_with(acme, audit, keyring, await code_for(acme, keyring))
    await acme.run(revoke_teams, audit, E1, "operator", by="cli:ops")
    assert await events_of(audit, "acme", WORKSPACE_UNLINKED) == [
        {"platform": "teams", "entra_tenant_id": E1, "reason": "operator", "by": "cli:ops"}]


async def test_revoking_forgets_that_entra_tenants_conversations_only(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    await link_with(acme, audit, keyring, await code_for(acme, keyring))
    await link_with(acme, audit, keyring, await code_for(acme, keyring), E2)
    for entra, conversation in ((E1, "a:1one"), (E2, "a:1two")):
        await acme.run(remember_conversation, "acme", entra, conversation, {"id": conversation})
    await acme.run(revoke_teams, audit, E1, "uninstalled")
    assert await acme.run(conversation_reference, "acme", "a:1one") is None
    assert await acme.run(conversation_reference, "acme", "a:1two") == {"id": "a:1two"}


async def test_purge_removes_the_tenants_teams_rows_and_counts_its_own_codes(
    acme: Database, audit: AuditLog, keyring: Keyring
) -> None:
    await link_with(acme, audit, keyring, await code_for(acme, keyring))
    await code_for(acme, keyring)
    await acme.run(issue_install_link, keyring, "acme", "https://t.example", DAY)
    await link_with(acme, audit, keyring, await code_for(acme, keyring, "globex"), E2)
    for tenant_id, entra in (("acme", E1), ("globex", E2)):
        await acme.run(remember_conversation, tenant_id, entra, "19:x@thread.tacv2", {})
        await acme.run(first_activity, "1700000000000", entra, "19:x@thread.tacv2")

    assert await acme.run(purge_teams, "acme") == {
        "teams_activities": 1, "teams_conversations": 1, "teams_tenants": 1,
        "teams_link_codes": 2}
    assert await acme.run(purge_workspaces, "acme") == {"slack_workspaces": 0,
                                                        "install_links": 1}
    assert await acme.run(resolve_teams, E1) is None
    assert await acme.run(conversation_reference, "globex", "19:x@thread.tacv2") == {}
    assert await acme.run(purge_teams, "globex") == {
        "teams_activities": 1, "teams_conversations": 1, "teams_tenants": 1,
        "teams_link_codes": 1}


async def test_the_migration_creates_the_teams_tables_as_declared(db: Database) -> None:
    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata)
                if any(name in str(d) for name in TEAMS_TABLES)]

    assert await db.run(differences) == []
