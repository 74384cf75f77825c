"""Tests of ``bots.slack.oauth_flow``: the authorisation in front of every acknowledgement."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import oauth_flow
from bots.slack.oauth_flow import ExpiringAuthorize, RecentInstallations
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from standins.slack.api import SlackStandIn, SlackUser

TEAM = "T1"


async def install(db: Database, keyring: Keyring, slack: SlackStandIn) -> None:
    made = slack.add_workspace(TEAM, "xoxb-t1", None, users=[SlackUser("U1")])
    await RecentInstallations(db, keyring).async_save(Installation(
        app_id="A0TENANTRY", enterprise_id=None, team_id=TEAM, bot_token="xoxb-t1",
        bot_id=made.bot_id, bot_user_id=made.bot_user_id, bot_scopes=list(made.scopes),
        user_id="U1", is_enterprise_install=False, installed_at=time.time()))


def authorizer(db: Database, keyring: Keyring) -> ExpiringAuthorize:
    return ExpiringAuthorize(logger=logging.getLogger("test"),
                             installation_store=RecentInstallations(db, keyring))


async def authorize(auth: ExpiringAuthorize, slack: SlackStandIn, user: str) -> str | None:
    context = AsyncBoltContext(client=AsyncWebClient(base_url=slack.base_url),
                               is_enterprise_install=False)
    result = await auth(context=context, enterprise_id=None, team_id=TEAM, user_id=user)
    return None if result is None else result.bot_token


async def test_a_burst_of_requests_authorises_its_workspace_once(db: Database) -> None:
    keyring = Keyring([generate_key()])
    async with SlackStandIn() as slack:
        await install(db, keyring, slack)
        auth = authorizer(db, keyring)

        tokens = await asyncio.gather(*(authorize(auth, slack, f"U{i}") for i in range(20)))

        assert tokens == ["xoxb-t1"] * 20
        assert len(slack.calls("auth.test")) == 1


async def test_an_expired_authorisation_is_renewed_once_for_a_burst(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(oauth_flow, "AUTHORIZE_CACHE_S", 0.2)
    keyring = Keyring([generate_key()])
    async with SlackStandIn() as slack:
        await install(db, keyring, slack)
        auth = authorizer(db, keyring)
        assert await authorize(auth, slack, "U1") == "xoxb-t1"
        await asyncio.sleep(0.25)  # past its lifetime, within twice that

        tokens = await asyncio.gather(*(authorize(auth, slack, f"U{i}") for i in range(20)))

        assert tokens == ["xoxb-t1"] * 20
        assert len(slack.calls("auth.test")) == 2


async def test_a_revoked_token_stops_being_authorised_once_renewed(db: Database) -> None:
    keyring = Keyring([generate_key()])
    async with SlackStandIn() as slack:
        await install(db, keyring, slack)
        slack.revoke_token("xoxb-t1", "token_revoked")

        assert await authorize(authorizer(db, keyring), slack, "U1") is None
