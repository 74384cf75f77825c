"""Installing the app the way a workspace admin does: an install link, Slack's OAuth, the link.

The person's browser is played by the driver's HTTP session and Slack's authorisation
page by the stand-in (which hands out the code an approval would); everything else is
the real app: the install page, Bolt's OAuth flow with its state cookie, the code
exchanged through ``oauth.v2.access``, the installation stored encrypted and the
workspace linked to the install link's tenant::

    workspace = await install_through_oauth(scenario, "T1", "acme", users=[ALICE])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

from installs.links import issue_install_link
from standins.slack.api import SlackUser
from standins.slack.driver import PUBLIC_URL, Scenario
from standins.slack.requests import Sent, Workspace

REDIRECT = f"{PUBLIC_URL}/slack/oauth_redirect"
STATE_COOKIE = "slack-app-oauth-state"


class InstallFailed(RuntimeError):
    """A step of the install did not answer as Slack's flow should; the message says which."""


@dataclass(frozen=True, slots=True)
class InstallStart:
    """What the install page answered: where it sent the browser and the cookie it set.

    Attributes:
        location: The ``Location`` of the redirect to Slack's authorisation page.
        query: That URL's query, parsed (``client_id``, ``scope``, ``state``...).
        set_cookie: The ``Set-Cookie`` header, attributes included.
        state: The OAuth state sent to Slack, which the cookie also holds.
        cookie: The ``Cookie`` header a browser sends back (the cookie is ``Secure``, so
            a client on plain http carries it by hand, as a browser on https would).
    """

    location: str
    query: dict[str, list[str]]
    set_cookie: str
    state: str
    cookie: str


async def install_link(scenario: Scenario, tenant_id: str) -> str:
    """The path and query of a fresh install link for ``tenant_id``, as an operator issues it."""
    url = await scenario.db.run(issue_install_link, scenario.runtime.keyring, tenant_id,
                                PUBLIC_URL, timedelta(hours=1))
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def begin_install(scenario: Scenario, path: str) -> InstallStart:
    """Open the install page at ``path``; the app must redirect to Slack with a state cookie."""
    sent = await scenario.get(path)
    if sent.status != 302:
        raise InstallFailed(f"the install page answered {sent.status}: {sent.text[:200]}")
    location = sent.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    set_cookie = sent.headers.getall("Set-Cookie")[0]
    name, _, value = set_cookie.split(";")[0].partition("=")
    return InstallStart(location=location, query=query, set_cookie=set_cookie,
                        state=query.get("state", [""])[0], cookie=f"{name}={value}")


async def finish_install(scenario: Scenario, start: InstallStart, code: str, *,
                         cookie: str | None = None) -> Sent:
    """Come back from Slack with ``code``: the page after Slack's redirect."""
    return await scenario.get(f"/slack/oauth_redirect?code={code}&state={quote(start.state)}",
                              cookie=start.cookie if cookie is None else cookie)


async def install_through_oauth(
    scenario: Scenario, team_id: str, tenant_id: str, *, users: Iterable[SlackUser] = (),
    name: str | None = None,
) -> Workspace:
    """Install the app in workspace ``team_id`` through an install link for ``tenant_id``.

    The first of ``users`` approves the install. Installing again (a restart of the
    playground) is what a reinstall is in Slack: a new code, the same token, the link
    refreshed.

    Raises:
        InstallFailed: a page refused, or the workspace was not linked.
    """
    users = list(users) or [SlackUser("UINSTALLER", is_admin=True)]
    token, channel = f"xoxb-{team_id}".lower(), f"C{team_id}"
    made = scenario.slack.add_workspace(team_id, token, users=users, channels=[channel],
                                        name=name)
    start = await begin_install(scenario, await install_link(scenario, tenant_id))
    code = f"code-{team_id}-{len(scenario.slack.calls('oauth.v2.access'))}"
    scenario.slack.add_install_code(code, team_id, users[0].id, redirect_uri=REDIRECT)
    done = await finish_install(scenario, start, code)
    if done.status != 200 or "is linked" not in done.text:
        raise InstallFailed(f"the install of {team_id} ended with {done.status}: "
                            f"{done.text[:200]}")
    return Workspace(team_id=team_id, token=token, channel=channel,
                     bot_user_id=made.bot_user_id)
