from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select, update

from core.crypto import Keyring
from core.db.engine import Database
from core.errors import InvalidInput
from installs.links import InstallLinkError, issue_install_link, link, list_links, resolve
from installs.oauth import TenantClaimState, complete_install, slack_oauth_states, uninstall
from installs.principals import roles_from_slack, slack_principal
from installs.slack_store import SlackInstallationStore
from standins.slack.api import SlackStandIn, SlackUser
from tests.support.databases import execute, fetch_value

# slack_sdk 3.48's oauth_v2_access sends the client credentials through aiohttp.BasicAuth,
# which aiohttp 3.14 deprecates; the SDK, not our code, has to move to encode_basic_auth.
SDK_BASIC_AUTH_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning:slack_sdk"
)


@pytest.fixture
def states(acme: Database, keyring: Keyring) -> TenantClaimState:
    return TenantClaimState(acme, keyring)


async def install_link(db: Database, keyring: Keyring, tenant_id: str = "acme") -> str:
    url = await db.run(issue_install_link, keyring, tenant_id, "https://t.example",
                       timedelta(hours=1))
    return parse_qs(urlsplit(url).query)["link"][0]


def workspace(team: str, enterprise: str | None = None, user: str = "U1") -> Installation:
    return Installation(app_id="A1", enterprise_id=enterprise, team_id=team,
                        bot_token=f"xoxb-{team}", bot_id="B1", bot_user_id="UB1", user_id=user)


def org_install(enterprise: str = "E1") -> Installation:
    return Installation(app_id="A1", enterprise_id=enterprise, team_id=None,
                        bot_token=f"xoxb-{enterprise}", bot_id="B1", bot_user_id="UB1",
                        user_id="W1", is_enterprise_install=True)


async def state_rows(db: Database) -> int:
    return int(await fetch_value(db, select(func.count()).select_from(slack_oauth_states)) or 0)


async def test_a_state_is_consumed_once(states: TenantClaimState) -> None:
    state = await states.async_issue()
    assert len(state) >= 40
    assert await states.async_consume(state) is True
    assert await states.async_consume(state) is False
    assert await states.async_consume("never-issued") is False
    assert await states.async_consume("x" * 500) is False


async def test_an_expired_state_is_refused(acme: Database, states: TenantClaimState) -> None:
    state = await states.async_issue()
    await execute(acme, update(slack_oauth_states).values(
        expire_at=datetime.now(UTC) - timedelta(seconds=1)
    ))
    assert await states.async_consume(state) is False
    assert await states.take_claim(state) is None


async def test_issuing_purges_long_expired_states(
    acme: Database, states: TenantClaimState
) -> None:
    await states.async_issue()
    await execute(acme, update(slack_oauth_states).values(
        expire_at=datetime.now(UTC) - timedelta(days=1)
    ))
    await states.async_issue()
    assert await state_rows(acme) == 1


async def test_the_claim_rides_with_the_state_encrypted_and_is_taken_once(
    acme: Database, keyring: Keyring, states: TenantClaimState
) -> None:
    token = await install_link(acme, keyring)
    state = await states.async_issue(link_token=token)
    assert token not in state
    stored = await fetch_value(acme, select(slack_oauth_states.c.link_token))
    assert stored is not None and token not in stored

    assert await states.take_claim(state) is None, "a claim is only taken after Bolt's consume"
    assert await states.async_consume(state)
    assert await states.take_claim(state) == token
    assert await states.take_claim(state) is None
    assert await states.take_claim(None) is None
    assert await state_rows(acme) == 0


async def test_a_dead_link_is_refused_before_the_installer_goes_to_slack(
    acme: Database, keyring: Keyring, states: TenantClaimState
) -> None:
    token = await install_link(acme, keyring)
    await acme.run(complete_install, keyring, workspace("T1"), token)
    with pytest.raises(InstallLinkError) as caught:
        await states.async_issue(link_token=token)
    assert caught.value.reason == "already_used"
    with pytest.raises(InstallLinkError, match="bad signature"):
        await states.async_issue(link_token="forged")
    assert await state_rows(acme) == 0


async def test_an_install_with_a_claim_links_the_workspace(
    acme: Database, keyring: Keyring
) -> None:
    token = await install_link(acme, keyring)
    result = await acme.run(complete_install, keyring, workspace("T1", user="U7"), token)
    assert (result.tenant_id, result.linked, result.linked_now, result.reason) == (
        "acme", True, True, None)
    found = await acme.run(resolve, None, "T1", is_enterprise_install=False)
    assert found is not None and found.tenant_id == "acme" and found.installer_user_id == "U7"
    stored = await SlackInstallationStore(acme, keyring).async_find_bot(
        enterprise_id=None, team_id="T1")
    assert stored is not None and stored.bot_token == "xoxb-T1"

    replay = await acme.run(complete_install, keyring, workspace("T2"), token)
    assert (replay.linked, replay.reason) == (False, "already_used")
    assert await acme.run(resolve, None, "T2", is_enterprise_install=False) is None


async def test_an_install_without_a_claim_is_stored_but_unlinked(
    acme: Database, keyring: Keyring
) -> None:
    result = await acme.run(complete_install, keyring, workspace("T1"), None)
    assert (result.linked, result.linked_now, result.reason) == (False, False, "no_claim")
    assert await acme.run(list_links) == []
    found = await SlackInstallationStore(acme, keyring).async_find_installation(
        enterprise_id=None, team_id="T1")
    assert found is not None and found.bot_token == "xoxb-T1"

    await acme.run(link, None, "T1", "acme", "U1")
    again = await acme.run(complete_install, keyring, workspace("T1"), None)
    assert (again.tenant_id, again.linked_now, again.reason) == ("acme", False, "no_claim")


async def test_an_org_install_links_the_org_for_every_team(
    acme: Database, keyring: Keyring
) -> None:
    token = await install_link(acme, keyring, "globex")
    result = await acme.run(complete_install, keyring, org_install("E1"), token)
    assert (result.enterprise_id, result.team_id, result.is_enterprise_install) == (
        "E1", None, True)
    assert result.tenant_id == "globex"
    for team in ("T1", "T2", None):
        found = await acme.run(resolve, "E1", team, is_enterprise_install=True)
        assert found is not None and found.tenant_id == "globex" and found.is_org


async def test_a_claim_for_a_workspace_linked_elsewhere_is_refused_and_not_spent(
    acme: Database, keyring: Keyring
) -> None:
    await acme.run(complete_install, keyring, workspace("T1"),
                   await install_link(acme, keyring))
    token = await install_link(acme, keyring, "globex")
    refused = await acme.run(complete_install, keyring, workspace("T1"), token)
    assert (refused.tenant_id, refused.linked_now, refused.reason) == (
        "acme", False, "linked_elsewhere")
    moved = await acme.run(complete_install, keyring, workspace("T2"), token)
    assert moved.tenant_id == "globex" and moved.linked_now


async def test_uninstalling_one_workspace_leaves_another_untouched(
    acme: Database, keyring: Keyring
) -> None:
    await acme.run(complete_install, keyring, workspace("T1", "E1"),
                   await install_link(acme, keyring))
    await acme.run(complete_install, keyring, workspace("T2", "E1"),
                   await install_link(acme, keyring, "globex"))
    await acme.run(complete_install, keyring, org_install("E2"),
                   await install_link(acme, keyring))

    revoked = await acme.run(uninstall, "E1", "T1", is_enterprise_install=False)
    assert revoked is not None and revoked.status == "revoked" and revoked.tenant_id == "acme"
    store = SlackInstallationStore(acme, keyring)
    assert await store.async_find_installation(enterprise_id="E1", team_id="T1") is None
    kept = await store.async_find_installation(enterprise_id="E1", team_id="T2")
    assert kept is not None and kept.bot_token == "xoxb-T2"
    other = await acme.run(resolve, "E1", "T2", is_enterprise_install=False)
    assert other is not None and other.active and other.tenant_id == "globex"

    gone = await acme.run(uninstall, "E2", "T5", is_enterprise_install=True)
    assert gone is not None and gone.is_org and not gone.active
    assert await store.async_find_bot(
        enterprise_id="E2", team_id=None, is_enterprise_install=True) is None
    assert await acme.run(uninstall, "E3", "T9", is_enterprise_install=False) is None


async def exchange(slack: SlackStandIn, code: str) -> Installation:
    """Trade a code as Bolt's ``run_installation`` does, through the real SDK client."""
    client = AsyncWebClient(base_url=slack.base_url)
    granted = await client.oauth_v2_access(
        client_id=slack.client_id, client_secret=slack.client_secret, code=code
    )
    bot = await client.auth_test(token=granted["access_token"])
    org = bool(granted.get("is_enterprise_install"))
    enterprise = granted.get("enterprise") or {}
    team = granted.get("team") or {}
    installer = granted.get("authed_user") or {}
    return Installation(
        app_id=granted["app_id"], enterprise_id=enterprise.get("id"),
        enterprise_name=enterprise.get("name"), enterprise_url=bot["url"] if org else None,
        team_id=team.get("id"), team_name=team.get("name"), bot_token=granted["access_token"],
        bot_id=bot["bot_id"], bot_user_id=granted["bot_user_id"], bot_scopes=granted["scope"],
        user_id=installer["id"], user_token=installer.get("access_token"),
        user_scopes=installer.get("scope", ""), is_enterprise_install=org,
        token_type=granted["token_type"],
    )


@SDK_BASIC_AUTH_DEPRECATION
async def test_the_whole_round_trip_through_slack_links_an_org(
    acme: Database, keyring: Keyring, states: TenantClaimState
) -> None:
    async with SlackStandIn() as slack:
        slack.add_workspace("E1", "xoxb-org-e1", enterprise_id="E1")
        slack.add_install_code("code-1", "E1", "W1")
        state = await states.async_issue(link_token=await install_link(acme, keyring))
        assert await states.async_consume(state)
        installation = await exchange(slack, "code-1")
        result = await acme.run(complete_install, keyring, installation,
                                await states.take_claim(state))

        assert (result.tenant_id, result.is_enterprise_install, result.team_id) == (
            "acme", True, None)
        found = await acme.run(resolve, "E1", "T42", is_enterprise_install=True)
        assert found is not None and found.tenant_id == "acme" and found.installer_user_id == "W1"
        bot = await SlackInstallationStore(acme, keyring).async_find_bot(
            enterprise_id="E1", team_id="T42", is_enterprise_install=True)
        assert bot is not None
        who = await AsyncWebClient(token=bot.bot_token, base_url=slack.base_url).auth_test()
        assert who["team_id"] == "E1" and who["is_enterprise_install"] is True


async def test_slack_roles_come_from_users_info() -> None:
    people = [
        SlackUser("U1", is_owner=True, is_admin=True), SlackUser("U2", is_admin=True),
        SlackUser("U3"), SlackUser("U4", is_primary_owner=True), SlackUser("U5", deleted=True),
    ]
    async with SlackStandIn() as slack:
        slack.add_workspace("T1", "xoxb-t1", users=people)
        client = AsyncWebClient(token="xoxb-t1", base_url=slack.base_url)
        roles = {}
        for person in people:
            info = await client.users_info(user=person.id)
            roles[person.id] = roles_from_slack(info["user"])
    assert roles == {"U1": {"owner", "admin"}, "U2": {"admin"}, "U3": {"member"},
                     "U4": {"owner"}, "U5": set()}


def test_guests_are_only_guests_and_malformed_flags_grant_nothing() -> None:
    assert roles_from_slack({"is_restricted": True, "is_admin": True}) == {"guest"}
    assert roles_from_slack({"is_ultra_restricted": True}) == {"guest"}
    assert roles_from_slack({"is_admin": "true", "is_owner": 1}) == {"member"}
    assert roles_from_slack({}) == {"member"}


def test_a_principal_names_the_workspace_and_the_user() -> None:
    assert slack_principal("T1", "U1") == "slack:T1:U1"
    for team, user in [("T1", ""), ("", "U1"), ("T1:x", "U1"), ("T1", "U1:y")]:
        with pytest.raises(InvalidInput):
            slack_principal(team, user)
