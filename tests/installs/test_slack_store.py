from __future__ import annotations

import time
from typing import Any

import pytest
from slack_sdk.oauth.installation_store.models.installation import Installation
from sqlalchemy import Table, select, update

from core.crypto import CryptoError, Keyring, generate_key
from core.db.engine import Database
from installs.slack_store import SlackInstallationStore, slack_bots, slack_installations
from tests.support.databases import execute, fetch_all

LONG_REFRESH = "xoxe-1-" + "r" * 400


def workspace(team: str = "T1", *, bot: str = "xoxb-bot-T1", user: str = "U1",
              enterprise: str | None = None, installed_at: float | None = None) -> Installation:
    return Installation(
        app_id="A1", enterprise_id=enterprise, team_id=team, team_name=f"Team {team}",
        bot_token=bot, bot_id="B1", bot_user_id="UB1", bot_scopes="commands,chat:write",
        bot_refresh_token=LONG_REFRESH, bot_token_expires_in=43_200,
        user_id=user, user_token=f"xoxp-user-{user}", user_scopes="search:read",
        user_refresh_token=f"xoxe-1-user-{user}", user_token_expires_in=43_200,
        incoming_webhook_url=f"https://hooks.slack.com/services/{team}/B/secret",
        incoming_webhook_channel="#general", token_type="bot",
        installed_at=installed_at if installed_at is not None else time.time(),
    )


def org(enterprise: str = "E1") -> Installation:
    return Installation(
        app_id="A1", enterprise_id=enterprise, enterprise_name="Grid Co",
        enterprise_url="https://grid.enterprise.slack.com/", team_id=None,
        bot_token=f"xoxb-org-{enterprise}", bot_id="B2", bot_user_id="UB2",
        bot_scopes="commands", user_id="W1", user_token="xoxp-org-admin",
        is_enterprise_install=True, token_type="bot",
    )


SECRETS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token",
           "incoming_webhook_url")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring([generate_key()])


@pytest.fixture
def store(db: Database, keyring: Keyring) -> SlackInstallationStore:
    return SlackInstallationStore(db, keyring)


async def raw(db: Database, table: Table) -> list[dict[str, Any]]:
    rows = await fetch_all(db, select(table).order_by(table.c.id))
    return [dict(row._mapping) for row in rows]


async def test_tokens_are_not_stored_in_plain_text(
    db: Database, store: SlackInstallationStore, keyring: Keyring
) -> None:
    installation = workspace()
    await store.async_save(installation)

    [stored] = await raw(db, slack_installations)
    [bot] = await raw(db, slack_bots)
    dumped = repr(stored) + repr(bot)
    for name in SECRETS:
        plain = getattr(installation, name)
        assert plain not in dumped
        assert keyring.decrypt(stored[name]) == plain
    assert keyring.decrypt(bot["bot_token"]) == "xoxb-bot-T1"
    assert stored["team_id"] == "T1" and stored["bot_scopes"] == "commands,chat:write"


async def test_a_workspace_install_round_trips(store: SlackInstallationStore) -> None:
    saved = workspace()
    await store.async_save(saved)

    found = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert found is not None
    assert found.to_dict() == saved.to_dict()
    by_user = await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert by_user is not None and by_user.user_token == "xoxp-user-U1"
    bot = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.bot_token == "xoxb-bot-T1"
    assert bot.bot_refresh_token == LONG_REFRESH and bot.bot_scopes == ["commands", "chat:write"]
    assert await store.async_find_installation(enterprise_id=None, team_id="T2") is None
    assert await store.async_find_installation(enterprise_id="E1", team_id="T1") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T2") is None


async def test_an_org_wide_install_is_stored_without_team_and_found_for_any_team(
    db: Database, store: SlackInstallationStore
) -> None:
    await store.async_save(org())
    [stored] = await raw(db, slack_installations)
    assert stored["team_id"] is None and stored["is_enterprise_install"] is True

    for team in ("T1", "T7", None):
        found = await store.async_find_installation(
            enterprise_id="E1", team_id=team, is_enterprise_install=True
        )
        assert found is not None and found.is_enterprise_install
        assert found.bot_token == "xoxb-org-E1" and found.user_token == "xoxp-org-admin"
        assert found.enterprise_url == "https://grid.enterprise.slack.com/"
        bot = await store.async_find_bot(enterprise_id="E1", team_id=team,
                                         is_enterprise_install=True)
        assert bot is not None and bot.bot_token == "xoxb-org-E1"
    assert await store.async_find_installation(enterprise_id="E1", team_id="T1") is None


async def test_a_token_refresh_updates_in_place_and_a_reinstall_wins(
    db: Database, store: SlackInstallationStore
) -> None:
    first = workspace(installed_at=1_700_000_000.25)
    await store.async_save(first)
    found = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert found is not None
    found.bot_token = "xoxb-refreshed"
    await store.async_save(found)
    assert len(await raw(db, slack_installations)) == 1
    assert len(await raw(db, slack_bots)) == 1
    bot = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.bot_token == "xoxb-refreshed"

    await store.async_save(workspace(bot="xoxb-reinstalled", installed_at=1_700_000_100.0))
    latest = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert latest is not None and latest.bot_token == "xoxb-reinstalled"
    assert latest.installed_at == 1_700_000_100.0


async def test_a_users_installation_carries_the_latest_bot_token(
    store: SlackInstallationStore,
) -> None:
    await store.async_save(workspace(user="U1", installed_at=1_700_000_000.0))
    await store.async_save(workspace(user="U2", bot="xoxb-newer", installed_at=1_700_000_050.0))
    mine = await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert mine is not None
    assert (mine.user_token, mine.bot_token) == ("xoxp-user-U1", "xoxb-newer")


async def test_rotation_re_encrypts_every_token_under_the_newest_key(db: Database) -> None:
    oldest, newest = generate_key(), generate_key()
    keyring = Keyring([oldest])
    await SlackInstallationStore(db, keyring).async_save(workspace())
    await SlackInstallationStore(db, keyring).async_save(org())
    before = await raw(db, slack_installations) + await raw(db, slack_bots)

    rotated = await SlackInstallationStore(db, keyring).rotate_all(Keyring([newest, oldest]))
    assert rotated == 5 + 2 + 1 + 2

    after = await raw(db, slack_installations) + await raw(db, slack_bots)
    for old_row, new_row in zip(before, after, strict=True):
        for name, value in old_row.items():
            if value is not None and name in SECRETS:
                assert new_row[name] != value
    alone = SlackInstallationStore(db, Keyring([newest]))
    found = await alone.async_find_installation(enterprise_id=None, team_id="T1")
    assert found is not None and found.user_token == "xoxp-user-U1"
    with pytest.raises(CryptoError):
        await SlackInstallationStore(db, keyring).async_find_bot(enterprise_id=None, team_id="T1")


async def test_rotation_names_unreadable_rows_after_rotating_the_rest(
    db: Database, store: SlackInstallationStore, keyring: Keyring
) -> None:
    await store.async_save(workspace("T1"))
    await store.async_save(workspace("T2"))
    foreign = Keyring([generate_key()]).encrypt("xoxb-foreign")
    await execute(db, update(slack_bots).where(slack_bots.c.team_id == "T2")
                  .values(bot_token=foreign))
    with pytest.raises(CryptoError, match=r"slack_bots#2"):
        await store.rotate_all()
    found = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert found is not None and found.bot_token == "xoxb-bot-T1"


async def test_deleting_one_workspace_leaves_the_others(
    db: Database, store: SlackInstallationStore
) -> None:
    await store.async_save(workspace("T1"))
    await store.async_save(workspace("T2", user="U1"))
    await store.async_save(workspace("T2", user="U2"))
    await store.async_save(org())

    await store.async_delete_installation(enterprise_id=None, team_id="T2", user_id="U2")
    assert await store.async_find_installation(
        enterprise_id=None, team_id="T2", user_id="U2") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T2") is not None

    await store.async_delete_bot(enterprise_id=None, team_id="T2")
    assert await store.async_find_bot(enterprise_id=None, team_id="T2") is None

    await store.async_delete_all(enterprise_id=None, team_id="T2")
    assert await store.async_find_installation(enterprise_id=None, team_id="T2") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is not None
    assert await store.async_find_installation(
        enterprise_id="E1", team_id=None, is_enterprise_install=True) is not None

    await store.async_delete_all(enterprise_id="E1", team_id=None)
    assert await store.async_find_bot(
        enterprise_id="E1", team_id="T3", is_enterprise_install=True) is None
    assert {row["team_id"] for row in await raw(db, slack_installations)} == {"T1"}

