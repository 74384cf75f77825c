"""A local Slack driver: the real ``tenantry serve`` app on loopback, Slack played by the stand-in.

Used by the offline demo, the benchmarks and the scenario tests.

``open_scenario`` starts ``bots.web.create_app(settings)`` on ``127.0.0.1`` at a free
port with a ``SlackStandIn`` as the Slack API URL, so every outbound Web API call goes
through the real slack_sdk client to the stand-in, and every inbound request goes
through aiohttp, Bolt's signature check and our listeners. Requests are really signed
(``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``, as Slack signs them), so the
tests exercise the same verification a production deployment does.

Example::

    async with open_scenario(settings) as s:
        acme = await s.tenant("acme")
        t1 = await s.link_workspace("T1", "acme")
        await s.mention(t1, "U1", "hello")
        await s.idle()
        assert s.slack.messages(t1.channel)[-1].text.startswith("[sandbox")
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy
from pydantic import SecretStr
from slack_sdk.oauth.installation_store.models.installation import Installation

from bots.executor import Executor
from bots.runtime import Runtime
from bots.settings import ServerSettings
from bots.slack.settings import SlackSettings
from bots.web import EXECUTOR, RUNTIME, create_app
from core.audit import AuditEvent
from core.db.engine import Database
from core.errors import Conflict
from core.runs import RunRecord
from core.settings import Settings
from core.tenants import Plan, create_plan, create_tenant
from installs.links import link
from installs.slack_store import SlackInstallationStore
from standins.slack.api import SlackMessage, SlackStandIn, SlackUser

SIGNING_SECRET = "local-signing-secret"  # noqa: S105  # the stand-in's, never a real app's
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "standin-client-secret"  # noqa: S105  # the stand-in's
APP_ID = "A0TENANTRY"
PUBLIC_URL = "https://tenantry.example.com"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def default_plan(plan_id: str = "team") -> Plan:
    """A plan generous enough for a few runs, licensing every built-in capability."""
    return Plan(
        id=plan_id, monthly_tokens=10_000_000, monthly_cost_microcents=10**12,
        monthly_tool_calls=10_000, run_tokens=200_000, run_tool_calls=20,
        run_walltime_ms=60_000, run_cost_microcents=10**10,
        capabilities=frozenset({"counter.bump", "budget.status", "knowledge.search",
                                "audit.recent", "runs.status"}),
    )


@dataclass(frozen=True, slots=True)
class Sent:
    """What the app answered to one request, and how long it took."""

    status: int
    text: str
    headers: CIMultiDictProxy[str]
    elapsed: float

    def json(self) -> Any:
        """The body as JSON (Bolt's ack with a message)."""
        return json.loads(self.text)


@dataclass(frozen=True, slots=True)
class Workspace:
    """A Slack workspace (or Grid org) installed in the stand-in, and how it is linked.

    Attributes:
        team_id: The workspace where people talk (for an org-wide install, a team of
            the org; the installation itself is the org's).
        token: The bot token the stand-in issued; every post must carry it.
        channel: A public channel of the workspace.
        org_wide: Whether the installation is the org's (Enterprise Grid).
    """

    team_id: str
    token: str
    channel: str
    enterprise_id: str | None = None
    org_wide: bool = False
    bot_user_id: str = ""

    @property
    def installed_team(self) -> str | None:
        """The team of the installation: ``None`` for an org-wide install."""
        return None if self.org_wide else self.team_id


@dataclass
class Scenario:
    """A running app and the stand-in it talks to; see the module docstring."""

    settings: Settings
    slack_settings: SlackSettings
    slack: SlackStandIn
    app: web.Application
    url: str
    session: aiohttp.ClientSession
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def runtime(self) -> Runtime:
        """The app's runtime (database, agent, audit), as opened by its lifespan."""
        return self.app[RUNTIME]

    @property
    def executor(self) -> Executor:
        """The app's executor, which owns every run started by a request."""
        return self.app[EXECUTOR]

    @property
    def db(self) -> Database:
        """The app's database."""
        return self.runtime.db

    async def idle(self) -> None:
        """Wait until every job the requests so far submitted has finished."""
        await self.executor.wait_idle()

    def next_ts(self) -> str:
        """A fresh Slack message ts for a message a person writes."""
        return f"{int(time.time())}.{next(self._serial):06d}"

    # -- tenants and workspaces --------------------------------------------------

    async def tenant(self, tenant_id: str, the_plan: Plan | None = None) -> str:
        """Create a tenant (and its plan, once)."""
        the_plan = the_plan or default_plan()
        with contextlib.suppress(Conflict):
            await create_plan(self.db, the_plan)
        await create_tenant(self.db, tenant_id=tenant_id, name=tenant_id.title(),
                            plan_id=the_plan.id)
        return tenant_id

    async def install(
        self,
        team_id: str,
        *,
        enterprise_id: str | None = None,
        org_wide: bool = False,
        users: Iterable[SlackUser] = (),
        channel: str | None = None,
    ) -> Workspace:
        """Install the app in a workspace of the stand-in and store the installation.

        The installation goes through ``SlackInstallationStore.async_save`` as an OAuth
        completion would store it (tokens encrypted), without linking it to a tenant.
        For an org-wide install ``team_id`` is a team of the org where people talk.
        """
        token = f"xoxb-{(enterprise_id if org_wide else team_id) or team_id}".lower()
        channel = channel or f"C{team_id}"
        installed = enterprise_id if org_wide and enterprise_id else team_id
        made = self.slack.add_workspace(installed, token, enterprise_id, users=users,
                                        channels=[channel])
        if org_wide:
            self.slack.add_workspace(team_id, f"{token}-team", enterprise_id, users=users)
        await SlackInstallationStore(self.db, self.runtime.keyring).async_save(Installation(
            app_id=APP_ID, enterprise_id=enterprise_id,
            team_id=None if org_wide else team_id, bot_token=token, bot_id=made.bot_id,
            bot_user_id=made.bot_user_id, bot_scopes=list(made.scopes),
            user_id=next(iter(users), SlackUser("UINSTALLER")).id,
            is_enterprise_install=org_wide, installed_at=time.time(),
        ))
        return Workspace(team_id=team_id, token=token, channel=channel,
                         enterprise_id=enterprise_id, org_wide=org_wide,
                         bot_user_id=made.bot_user_id)

    async def link_workspace(self, team_id: str, tenant_id: str, **install: Any) -> Workspace:
        """Install the app in a workspace and link it (or its org) to ``tenant_id``."""
        workspace = await self.install(team_id, **install)
        await link(self.db, workspace.enterprise_id, workspace.installed_team, tenant_id,
                   "UINSTALLER")
        return workspace

    # -- signed requests -----------------------------------------------------------

    def sign(self, body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
        """The two headers Slack adds to every request it sends.

        ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret,
        computed here from the published scheme rather than by the SDK under test.
        """
        base = b"v0:" + str(timestamp).encode() + b":" + body
        digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
        signed: Mapping[str, str] | None = None,
        path: str = "/slack/events",
    ) -> Sent:
        """POST ``body`` signed as Slack would (or with ``signed`` headers given as is)."""
        sent_headers = {"Content-Type": content_type, **(headers or {})}
        sent_headers.update(signed if signed is not None
                            else self.sign(body, timestamp or int(time.time())))
        started = time.monotonic()
        async with self.session.post(self.url + path, data=body, headers=sent_headers) as resp:
            text = await resp.text()
            return Sent(resp.status, text, resp.headers, time.monotonic() - started)

    async def command(
        self,
        ws: Workspace,
        user: str,
        text: str,
        *,
        channel: str | None = None,
        trigger_id: str | None = None,
        command: str | None = None,
    ) -> Sent:
        """A slash command typed by ``user`` in a channel of ``ws``."""
        form = {
            "token": "deprecated-verification-token",
            "team_id": ws.team_id,
            "team_domain": ws.team_id.lower(),
            "channel_id": channel or ws.channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command or self.slack_settings.command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "true" if ws.org_wide else "false",
            "response_url": f"{self.slack.base_url}response_url.{next(self._serial)}",
            "trigger_id": trigger_id or f"{next(self._serial)}.1234.abcdef",
        }
        if ws.enterprise_id:
            form |= {"enterprise_id": ws.enterprise_id, "enterprise_name": "Org"}
        return await self.post(urlencode(form).encode(), FORM)

    def event_body(self, ws: Workspace, event: Mapping[str, Any], *,
                   event_id: str | None = None) -> dict[str, Any]:
        """An Events API envelope (``event_callback``) around ``event``."""
        return {
            "token": "deprecated-verification-token",
            "team_id": ws.team_id,
            "enterprise_id": ws.enterprise_id,
            "api_app_id": APP_ID,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._serial):08d}",
            "event_time": int(time.time()),
            "authorizations": [{
                "enterprise_id": ws.enterprise_id,
                "team_id": ws.installed_team,
                "user_id": ws.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": ws.org_wide,
            }],
            "is_ext_shared_channel": False,
        }

    async def event(self, ws: Workspace, event: Mapping[str, Any], *,
                    event_id: str | None = None, retry_num: int | None = None) -> Sent:
        """Deliver one event; ``retry_num`` marks it as Slack's n-th retry."""
        headers = {} if retry_num is None else {
            "X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        body = json.dumps(self.event_body(ws, event, event_id=event_id)).encode()
        return await self.post(body, JSON, headers=headers)

    def mention_event(self, ws: Workspace, user: str, text: str, *,
                      channel: str | None = None, thread_ts: str | None = None) -> dict[str, Any]:
        """An ``app_mention`` event as a person writing ``@Tenantry text`` produces."""
        event: dict[str, Any] = {
            "type": "app_mention", "user": user, "text": f"<@{ws.bot_user_id}> {text}",
            "ts": self.next_ts(), "channel": channel or ws.channel, "team": ws.team_id,
            "event_ts": self.next_ts(),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return event

    async def mention(self, ws: Workspace, user: str, text: str, *,
                      channel: str | None = None, thread_ts: str | None = None) -> str:
        """Mention the app; returns the mention's ts (the thread it is answered in)."""
        event = self.mention_event(ws, user, text, channel=channel, thread_ts=thread_ts)
        sent = await self.event(ws, event)
        assert sent.status == 200, sent
        return str(event["ts"])

    async def dm(self, ws: Workspace, user: str, text: str, *, channel: str = "D0001",
                 thread_ts: str | None = None) -> str:
        """A direct message to the app (``message.im``); returns its ts."""
        event: dict[str, Any] = {
            "type": "message", "channel_type": "im", "user": user, "text": text,
            "ts": self.next_ts(), "channel": channel, "team": ws.team_id,
            "event_ts": self.next_ts(),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        sent = await self.event(ws, event)
        assert sent.status == 200, sent
        return str(event["ts"])

    async def uninstalled(self, ws: Workspace) -> Sent:
        """Slack's ``app_uninstalled`` event (sent after the tokens stopped working)."""
        self.slack.revoke_token(ws.token, "account_inactive")
        return await self.event(ws, {"type": "app_uninstalled", "event_ts": self.next_ts()})

    async def tokens_revoked(self, ws: Workspace, *, bot: bool = True,
                             users: Iterable[str] = ()) -> Sent:
        """Slack's ``tokens_revoked`` event for the bot token and/or user tokens."""
        if bot:
            self.slack.revoke_token(ws.token, "token_revoked")
        tokens = {"oauth": list(users), "bot": [ws.bot_user_id] if bot else []}
        return await self.event(ws, {"type": "tokens_revoked", "tokens": tokens,
                                     "event_ts": self.next_ts()})

    async def press(self, ws: Workspace, user: str, action_id: str, value: str, *,
                    channel: str, message_ts: str) -> Sent:
        """Press a button (``block_actions``) on a message of the app."""
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": ws.team_id},
            "api_app_id": APP_ID,
            "token": "deprecated-verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": False},
            "trigger_id": f"{next(self._serial)}.1234.abcdef",
            "team": {"id": ws.team_id, "domain": ws.team_id.lower(),
                     "enterprise_id": ws.enterprise_id},
            "enterprise": {"id": ws.enterprise_id} if ws.enterprise_id else None,
            "is_enterprise_install": ws.org_wide,
            "channel": {"id": channel, "name": "general"},
            "message": {"type": "message", "ts": message_ts, "text": ""},
            "response_url": f"{self.slack.base_url}response_url.{next(self._serial)}",
            "actions": [{"action_id": action_id, "block_id": "b1", "type": "button",
                         "value": value, "action_ts": self.next_ts()}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, FORM)

    # -- OAuth ------------------------------------------------------------------------

    async def get(self, path: str, *, cookie: str | None = None) -> Sent:
        """GET a page as a browser would, without following redirects."""
        headers = {"Cookie": cookie} if cookie else {}
        started = time.monotonic()
        async with self.session.get(self.url + path, headers=headers,
                                    allow_redirects=False) as resp:
            text = await resp.text()
            return Sent(resp.status, text, resp.headers, time.monotonic() - started)


@asynccontextmanager
async def open_scenario(settings: Settings, slack: SlackStandIn | None = None, *,
                        server: ServerSettings | None = None) -> AsyncIterator[Scenario]:
    """Run the app against a (fresh, or the given unstarted) stand-in for one scenario.

    The app is a complete Slack app pointed at the stand-in, served at ``PUBLIC_URL``;
    ``server`` sets the rest of the server's settings.
    """
    async with (slack or SlackStandIn(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                      app_id=APP_ID)) as standin:
        app_settings = SlackSettings(signing_secret=SecretStr(SIGNING_SECRET),
                                     client_id=CLIENT_ID,
                                     client_secret=SecretStr(CLIENT_SECRET),
                                     api_url=standin.base_url)
        server = (server or ServerSettings()).model_copy(update={"public_url": PUBLIC_URL})
        app = create_app(settings, server, app_settings)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = int(runner.addresses[0][1])
            async with aiohttp.ClientSession() as session:
                scenario = Scenario(settings=app[RUNTIME].settings, slack_settings=app_settings,
                                    slack=standin, app=app, url=f"http://127.0.0.1:{port}",
                                    session=session)
                try:
                    yield scenario
                finally:
                    await scenario.idle()
        finally:
            await runner.cleanup()


def today() -> str:
    """The billing period of a UTC tenant now (``YYYY-MM``)."""
    now = datetime.now(UTC)
    return f"{now.year:04d}-{now.month:02d}"


def thread(slack: SlackStandIn, channel: str, thread_ts: str) -> list[SlackMessage]:
    """The app's replies in one thread, oldest first (the root left out)."""
    return [m for m in slack.messages(channel) if m.thread_ts == thread_ts and m.ts != thread_ts]


async def runs_of(scenario: Scenario, tenant_id: str) -> list[RunRecord]:
    """The tenant's runs, oldest first."""
    return list(reversed(await scenario.runtime.agent.runs.recent(tenant_id, limit=100)))


async def audit_events(scenario: Scenario, tenant_id: str, *names: str) -> list[AuditEvent]:
    """The tenant's audit events of the given types, oldest first."""
    found = await scenario.runtime.audit.recent(tenant_id, 500, events=names or None)
    return list(reversed(found))
