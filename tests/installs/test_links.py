from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import delete, select, update

from core.crypto import Keyring, generate_key
from core.db.engine import Database
from core.db.schema import tenants
from core.errors import Conflict, InvalidInput, NotFound
from core.tenants import set_status
from installs.links import (
    PURPOSE,
    InstallLinkError,
    check_install_link,
    install_link_nonces,
    issue_install_link,
    link,
    list_links,
    redeem,
    redeem_and_link,
    resolve,
    revoke,
    slack_links,
)
from tests.support.databases import execute, fetch_all

DAY = timedelta(days=1)


def token_of(url: str) -> str:
    [token] = parse_qs(urlsplit(url).query)["link"]
    return token


async def issue(db: Database, keyring: Keyring, tenant_id: str = "acme") -> str:
    return token_of(await db.run(issue_install_link, keyring, tenant_id, "https://t.example", DAY))


async def reason_of(db: Database, keyring: Keyring, token: str) -> str:
    with pytest.raises(InstallLinkError) as caught:
        await db.run(redeem, keyring, token)
    return caught.value.reason


async def test_an_install_link_is_a_url_that_redeems_once(acme: Database, keyring: Keyring) -> None:
    url = await acme.run(issue_install_link, keyring, "acme", "https://t.example/base/", DAY)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "t.example", "/base/slack/install")
    token = token_of(url)
    assert "acme" not in token

    assert await acme.run(check_install_link, keyring, token) == "acme"
    assert await acme.run(redeem, keyring, token) == "acme"
    assert await reason_of(acme, keyring, token) == "already_used"
    with pytest.raises(InstallLinkError, match="already used"):
        await acme.run(check_install_link, keyring, token)


async def test_concurrent_redemptions_spend_a_link_exactly_once(
    acme: Database, keyring: Keyring
) -> None:
    token = await issue(acme, keyring)
    outcomes = await asyncio.gather(
        *(acme.run(redeem, keyring, token) for _ in range(5)), return_exceptions=True
    )
    assert outcomes.count("acme") == 1
    assert all(isinstance(o, InstallLinkError) and o.reason == "already_used"
               for o in outcomes if o != "acme")


async def test_an_expired_link_is_refused_by_its_claim_and_by_its_record(
    acme: Database, keyring: Keyring
) -> None:
    token = await issue(acme, keyring)
    await execute(acme, update(install_link_nonces).values(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    ))
    assert await reason_of(acme, keyring, token) == "expired"

    past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
    claim = {"p": PURPOSE, "t": "acme", "n": "n-1", "e": past}
    stale = keyring.encrypt(json.dumps(claim))
    assert await reason_of(acme, keyring, stale) == "expired"


async def test_forged_and_foreign_links_are_refused_as_bad_signatures(
    acme: Database, keyring: Keyring
) -> None:
    token = await issue(acme, keyring)
    other = Keyring([generate_key()])
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    future = int((datetime.now(UTC) + DAY).timestamp())
    candidates = [
        flipped,
        "",
        "x" * 5000,
        "not a token",
        other.encrypt(json.dumps({"p": PURPOSE, "t": "acme", "n": "n", "e": future})),
        keyring.encrypt("xoxb-a-stored-secret-not-a-claim"),
        keyring.encrypt(json.dumps({"p": "other/purpose", "t": "acme", "n": "n", "e": future})),
    ]
    for candidate in candidates:
        with pytest.raises(InstallLinkError, match="bad signature") as caught:
            await acme.run(redeem, keyring, candidate)
        assert caught.value.reason == "bad_signature"
    assert await acme.run(redeem, keyring, token) == "acme"


async def test_a_sealed_claim_without_an_issued_nonce_is_unknown(
    acme: Database, keyring: Keyring
) -> None:
    future = int((datetime.now(UTC) + DAY).timestamp())
    claim = keyring.encrypt(json.dumps({"p": PURPOSE, "t": "acme", "n": "never", "e": future}))
    assert await reason_of(acme, keyring, claim) == "unknown_link"


async def test_a_link_of_a_suspended_or_deleted_tenant_is_refused_and_not_spent(
    acme: Database, keyring: Keyring
) -> None:
    token = await issue(acme, keyring)
    await acme.run(set_status, "acme", "suspended")
    assert await reason_of(acme, keyring, token) == "tenant_suspended"
    await acme.run(set_status, "acme", "active")
    assert await acme.run(redeem, keyring, token) == "acme"

    orphan = await issue(acme, keyring, "globex")
    await execute(acme, delete(tenants).where(tenants.c.id == "globex"))
    assert await reason_of(acme, keyring, orphan) == "unknown_tenant"


async def test_issuing_checks_the_tenant_the_url_and_the_ttl(
    acme: Database, keyring: Keyring
) -> None:
    with pytest.raises(NotFound):
        await acme.run(issue_install_link, keyring, "initech", "https://t.example", DAY)
    await acme.run(set_status, "globex", "suspended")
    with pytest.raises(InstallLinkError, match="suspended"):
        await acme.run(issue_install_link, keyring, "globex", "https://t.example", DAY)
    for base, ttl in [("ftp://t.example", DAY), ("https://", DAY), ("https://t.example?a=1", DAY),
                      ("https://t.example", timedelta(0)), ("https://t.example", 31 * DAY)]:
        with pytest.raises(InvalidInput):
            await acme.run(issue_install_link, keyring, "acme", base, ttl)


async def test_org_link_covers_every_team_and_a_workspace_link_wins(acme: Database) -> None:
    await acme.run(link, "E1", None, "acme", "U1")
    await acme.run(link, "E1", "T2", "globex", "U2")

    for team in ("T1", "T9"):
        found = await acme.run(resolve, "E1", team, is_enterprise_install=True)
        assert found is not None and found.tenant_id == "acme" and found.is_org
    org_level = await acme.run(resolve, "E1", None, is_enterprise_install=True)
    assert org_level is not None and org_level.tenant_id == "acme"
    own = await acme.run(resolve, "E1", "T2", is_enterprise_install=False)
    assert own is not None and own.tenant_id == "globex" and own.team_id == "T2"
    assert await acme.run(resolve, "E2", "T1", is_enterprise_install=True) is None
    assert await acme.run(resolve, None, "T1", is_enterprise_install=False) is None
    assert await acme.run(resolve, "E1", None, is_enterprise_install=False) is None

    keys = await fetch_all(acme, select(slack_links.c.enterprise_id, slack_links.c.team_id)
                           .order_by(slack_links.c.team_id))
    assert [tuple(k) for k in keys] == [("E1", ""), ("E1", "T2")]


async def test_revoke_and_the_fallback_to_the_org(acme: Database) -> None:
    await acme.run(link, None, "T1", "acme", "U1")
    revoked = await acme.run(revoke, None, "T1")
    assert revoked is not None and revoked.status == "revoked" and revoked.revoked_at is not None
    again = await acme.run(resolve, None, "T1", is_enterprise_install=False)
    assert again is not None and not again.active
    assert await acme.run(revoke, None, "T404") is None

    await acme.run(link, "E1", "T2", "globex", "U2")
    await acme.run(link, "E1", None, "acme", "U1")
    await acme.run(revoke, "E1", "T2")
    fallback = await acme.run(resolve, "E1", "T2", is_enterprise_install=True)
    assert fallback is not None and fallback.tenant_id == "acme" and fallback.is_org


async def test_an_active_link_is_not_moved_to_another_tenant(acme: Database) -> None:
    first = await acme.run(link, None, "T1", "acme", "U1")
    assert (first.enterprise_id, first.team_id, first.active) == (None, "T1", True)
    refreshed = await acme.run(link, None, "T1", "acme", "U3")
    assert refreshed.installer_user_id == "U3"
    with pytest.raises(Conflict, match="linked to tenant 'acme'"):
        await acme.run(link, None, "T1", "globex", "U2")
    await acme.run(revoke, None, "T1")
    moved = await acme.run(link, None, "T1", "globex", "U2")
    assert moved.tenant_id == "globex" and moved.active and moved.revoked_at is None
    with pytest.raises(NotFound):
        await acme.run(link, None, "T5", "initech", "U1")
    with pytest.raises(InvalidInput):
        await acme.run(link, None, None, "acme", "U1")
    with pytest.raises(InvalidInput):
        await acme.run(link, "E:1", "T1", "acme", "U1")


async def test_a_refused_link_leaves_the_install_link_unspent(
    acme: Database, keyring: Keyring
) -> None:
    await acme.run(link, None, "T1", "globex", "U1")
    token = await issue(acme, keyring)
    with pytest.raises(Conflict):
        await acme.run(redeem_and_link, keyring, token, None, "T1", "U2")
    made = await acme.run(redeem_and_link, keyring, token, None, "T2", "U2")
    assert made.tenant_id == "acme" and made.installer_user_id == "U2"


async def test_list_links_orders_by_enterprise_then_team(acme: Database) -> None:
    await acme.run(link, "E1", "T2", "acme", "U1")
    await acme.run(link, None, "T9", "globex", None)
    await acme.run(link, "E1", None, "acme", "U1")
    listed = await acme.run(list_links)
    assert [(ln.enterprise_id, ln.team_id) for ln in listed] == [
        (None, "T9"), ("E1", None), ("E1", "T2")
    ]
    assert all(ln.linked_at.tzinfo is not None for ln in listed)
