"""Tests of ``bots.slack.authorize``: every request authorised by its installation's bot."""

from __future__ import annotations

import asyncio
import time

from slack_bolt.authorization.authorize_result import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation

from bots.slack.authorize import StoredBotAuthorize
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from installs.slack_store import SlackInstallationStore


class CountingStore(SlackInstallationStore):
    """The installation store, counting its bot lookups."""

    reads = 0

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        self.reads += 1
        return await super().async_find_bot(enterprise_id=enterprise_id, team_id=team_id,
                                            is_enterprise_install=is_enterprise_install)


class Clock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def installed(db: Database, *, enterprise_id: str | None = None,
                    team_id: str | None = "T1") -> CountingStore:
    store = CountingStore(db, Keyring([generate_key()]))
    await store.async_save(Installation(
        app_id="A0TENANTRY", enterprise_id=enterprise_id, team_id=team_id,
        bot_token="xoxb-1", bot_id="B1", bot_user_id="U1BOT", bot_scopes=["chat:write"],
        user_id="UINSTALLER", is_enterprise_install=team_id is None, installed_at=time.time()))
    return store


async def authorize(auth: StoredBotAuthorize, *, enterprise_id: str | None = None,
                    team_id: str | None = "T1", org: bool = False) -> AuthorizeResult | None:
    return await auth(context=AsyncBoltContext(is_enterprise_install=org),
                      enterprise_id=enterprise_id, team_id=team_id, user_id="U7")


async def test_a_request_is_authorised_by_its_workspaces_stored_bot(db: Database) -> None:
    auth = StoredBotAuthorize(await installed(db))

    result = await authorize(auth)

    assert result is not None
    assert (result.bot_token, result.bot_id, result.bot_user_id) == ("xoxb-1", "B1", "U1BOT")
    assert (result.team_id, result.user_id, result.bot_scopes) == ("T1", "U7", ["chat:write"])
    assert await authorize(auth, team_id="T2") is None, "another workspace has no bot here"


async def test_an_org_wide_install_authorises_every_team_of_the_org(db: Database) -> None:
    auth = StoredBotAuthorize(await installed(db, enterprise_id="E1", team_id=None))

    result = await authorize(auth, enterprise_id="E1", team_id="T9", org=True)

    assert result is not None and (result.enterprise_id, result.bot_token) == ("E1", "xoxb-1")


async def test_a_bot_is_read_once_per_ttl(db: Database) -> None:
    store, clock = await installed(db), Clock()
    auth = StoredBotAuthorize(store, ttl_s=30, clock=clock)

    for _ in range(5):
        assert await authorize(auth) is not None
    assert store.reads == 1
    clock.now += 31
    assert await authorize(auth) is not None
    assert store.reads == 2


async def test_a_burst_arriving_as_the_bot_expires_reads_the_store_once(db: Database) -> None:
    store, clock = await installed(db), Clock()
    auth = StoredBotAuthorize(store, ttl_s=30, clock=clock)

    results = await asyncio.gather(*(authorize(auth) for _ in range(20)))

    assert all(result is not None for result in results) and store.reads == 1
    clock.now += 31
    await asyncio.gather(*(authorize(auth) for _ in range(20)))
    assert store.reads == 2


async def test_an_installation_deleted_here_stops_being_trusted_at_once(db: Database) -> None:
    store = await installed(db)
    auth = StoredBotAuthorize(store, clock=Clock())
    assert await authorize(auth) is not None

    await store.async_delete_all(enterprise_id=None, team_id="T1")
    auth.forget(None, "T1")

    assert await authorize(auth) is None


async def test_an_installation_deleted_elsewhere_stops_being_trusted_within_the_ttl(
    db: Database,
) -> None:
    store, clock = await installed(db), Clock()
    auth = StoredBotAuthorize(store, ttl_s=30, clock=clock)
    assert await authorize(auth) is not None

    await store.async_delete_all(enterprise_id=None, team_id="T1")  # another process

    clock.now += 29
    assert await authorize(auth) is not None, "still within the TTL"
    clock.now += 2
    assert await authorize(auth) is None
