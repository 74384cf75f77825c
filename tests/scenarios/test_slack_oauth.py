"""Installing through an install link: Slack's OAuth, end to end, with the tenant claim."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from sqlalchemy import select, update

from bots.slack import render
from core.audit.events import WORKSPACE_LINKED
from installs.links import resolve
from installs.oauth import slack_oauth_states
from installs.slack_store import SlackInstallationStore, slack_bots
from standins.slack.api import SlackUser
from standins.slack.oauth import REDIRECT, STATE_COOKIE, begin_install, install_link
from tests.scenarios.harness import (
    CLIENT_ID,
    Scenario,
    Workspace,
    audit_events,
    runs_of,
    thread,
)
from tests.support.databases import execute, fetch_one

IVY = SlackUser("U7IVY", is_admin=True)
COOKIE = STATE_COOKIE


async def start(scenario: Scenario, path: str) -> tuple[str, str]:
    """Open the install page; return the state Slack is sent and the cookie set with it."""
    started = await begin_install(scenario, path)
    location = urlsplit(started.location)
    assert (location.netloc, location.path) == ("slack.com", "/oauth/v2/authorize")
    assert started.query["client_id"] == [CLIENT_ID]
    assert "chat:write" in started.query["scope"][0].split(",")
    assert "Secure" in started.set_cookie and "HttpOnly" in started.set_cookie
    name, _, value = started.cookie.partition("=")
    assert name == COOKIE and value == started.state
    return started.state, started.cookie


async def finish(scenario: Scenario, state: str, cookie: str, code: str) -> tuple[int, str]:
    sent = await scenario.get(
        f"/slack/oauth_redirect?code={code}&state={quote(state)}", cookie=cookie)
    return sent.status, sent.text


async def test_an_install_link_installs_and_links_the_workspace(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    path = await install_link(scenario, "acme")
    state, cookie = await start(scenario, path)
    scenario.slack.add_workspace("T7", "xoxb-t7", users=[IVY], channels=["CT7"])
    scenario.slack.add_install_code("code-7", "T7", IVY.id, redirect_uri=REDIRECT)

    status, page = await finish(scenario, state, cookie, "code-7")

    assert status == 200
    assert "Your workspace is linked to its Tenantry account" in page
    link = await scenario.db.run(resolve, None, "T7", False)
    assert link is not None and link.active and link.tenant_id == "acme"
    [linked] = await audit_events(scenario, "acme", WORKSPACE_LINKED)
    assert (linked.fields["team_id"], linked.fields["by"]) == ("T7", f"slack:T7:{IVY.id}")
    assert link.installer_user_id == IVY.id
    stored = (await fetch_one(scenario.db, select(slack_bots.c.bot_token)
                              .where(slack_bots.c.team_id == "T7"))).bot_token
    assert stored != "xoxb-t7" and "xoxb" not in stored, "the token is encrypted at rest"
    assert scenario.runtime.keyring.decrypt(stored) == "xoxb-t7"
    bot = await SlackInstallationStore(scenario.db, scenario.runtime.keyring).async_find_bot(
        enterprise_id=None, team_id="T7")
    assert bot is not None and bot.bot_token == "xoxb-t7"

    t7 = Workspace(team_id="T7", token="xoxb-t7", channel="CT7", bot_user_id="UT7BOT")
    mention = await scenario.mention(t7, IVY.id, "are you there?")
    await scenario.idle()
    [answer] = thread(scenario.slack, "CT7", mention)
    [run] = await runs_of(scenario, "acme")
    assert answer.text == run.answer


async def test_a_replayed_or_expired_state_is_refused(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    scenario.slack.add_workspace("T7", "xoxb-t7", users=[IVY])
    state, cookie = await start(scenario, await install_link(scenario, "acme"))
    scenario.slack.add_install_code("code-1", "T7", IVY.id)
    assert (await finish(scenario, state, cookie, "code-1"))[0] == 200

    scenario.slack.add_install_code("code-2", "T7", IVY.id)
    replayed, page = await finish(scenario, state, cookie, "code-2")
    assert replayed == 401
    assert "invalid_state" in page, "Bolt's own failure page names the reason"

    expired_state, expired_cookie = await start(scenario, await install_link(scenario, "acme"))
    await execute(scenario.db, update(slack_oauth_states)
                  .where(slack_oauth_states.c.state == expired_state)
                  .values(expire_at=datetime.now(UTC) - timedelta(seconds=1)))
    expired, _page = await finish(scenario, expired_state, expired_cookie, "code-2")
    assert expired == 401

    other_state, _ = await start(scenario, await install_link(scenario, "acme"))
    wrong_browser, _page = await finish(scenario, other_state, cookie, "code-2")
    assert wrong_browser == 400
    assert len(scenario.slack.calls("oauth.v2.access")) == 1


async def test_a_forged_or_spent_install_link_is_refused_before_slack(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme")
    forged = await scenario.get("/slack/install?link=not-a-real-link")
    path = await install_link(scenario, "acme")
    state, cookie = await start(scenario, path)
    scenario.slack.add_workspace("T7", "xoxb-t7", users=[IVY])
    scenario.slack.add_install_code("code-1", "T7", IVY.id)
    await finish(scenario, state, cookie, "code-1")
    spent = await scenario.get(path)

    assert forged.status == 400
    assert render.INSTALL_FAILURES["bad_signature"] in forged.text
    assert spent.status == 400
    assert render.INSTALL_FAILURES["already_used"] in spent.text
    assert "Location" not in spent.headers


async def test_an_install_without_a_link_is_stored_but_left_unlinked(
    scenario: Scenario,
) -> None:
    await scenario.tenant("acme")
    state, cookie = await start(scenario, "/slack/install")
    scenario.slack.add_workspace("T8", "xoxb-t8", users=[IVY], channels=["CT8"])
    scenario.slack.add_install_code("code-8", "T8", IVY.id)

    status, page = await finish(scenario, state, cookie, "code-8")

    assert status == 200
    assert "isn't linked to a Tenantry account" in page
    assert await scenario.db.run(resolve, None, "T8", False) is None
    store = SlackInstallationStore(scenario.db, scenario.runtime.keyring)
    assert await store.async_find_bot(enterprise_id=None, team_id="T8") is not None


async def test_an_enterprise_grid_org_wide_install_links_the_org(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    gil = SlackUser("W9GIL", is_org_admin=True)
    scenario.slack.add_workspace("E9", "xoxb-e9", "E9", enterprise_name="Starship",
                                 users=[gil], channels=["C9"])
    scenario.slack.add_workspace("T9", "xoxb-t9", "E9", users=[gil])
    state, cookie = await start(scenario, await install_link(scenario, "acme"))
    scenario.slack.add_install_code("code-e9", "E9", gil.id)

    status, page = await finish(scenario, state, cookie, "code-e9")

    assert status == 200 and "Your organization is linked" in page
    org = await scenario.db.run(resolve, "E9", None, True)
    assert org is not None and org.is_org and org.tenant_id == "acme"
    team = await scenario.db.run(resolve, "E9", "T9", True)
    assert team == org, "every team of the org is served through the org's link"
    bot = await SlackInstallationStore(scenario.db, scenario.runtime.keyring).async_find_bot(
        enterprise_id="E9", team_id=None, is_enterprise_install=True)
    assert bot is not None and bot.bot_token == "xoxb-e9"

    t9 = Workspace(team_id="T9", token="xoxb-e9", channel="C9", enterprise_id="E9",
                   org_wide=True, bot_user_id="WE9BOT")
    mention = await scenario.mention(t9, gil.id, "hello from a team of the org")
    await scenario.idle()
    [answer] = thread(scenario.slack, "C9", mention)
    [run] = await runs_of(scenario, "acme")
    assert answer.text == run.answer and run.principal_id == f"slack:T9:{gil.id}"


async def test_an_install_logged_at_debug_leaves_no_token_in_the_log(
    scenario: Scenario, debug_log: io.StringIO,
) -> None:
    """slack_sdk logs the whole oauth.v2.access answer, bot token included, at DEBUG."""
    await scenario.tenant("acme")
    state, cookie = await start(scenario, await install_link(scenario, "acme"))
    scenario.slack.add_workspace("T7", "xoxb-7777-debug-logged", users=[IVY], channels=["CT7"])
    scenario.slack.add_install_code("code-7", "T7", IVY.id, redirect_uri=REDIRECT)

    status, _page = await finish(scenario, state, cookie, "code-7")

    assert status == 200
    logged = debug_log.getvalue()
    assert "oauth.v2.access" in logged, "slack_sdk wrote its debug lines"
    assert "xoxb-7777" not in logged and "[redacted]" in logged
