"""A local Slack driver: the real ``tenantry serve`` app on loopback, Slack played by the stand-in.

Every outbound Web API call goes through the real slack_sdk client to the stand-in, and
every inbound request, really signed, through aiohttp, Bolt's signature check and our
listeners: the offline demo and the scenario tests exercise what a deployment runs::

    async with open_scenario(settings) as s:
        acme = await s.tenant("acme")
        t1 = await s.link_workspace("T1", "acme")
        await s.mention(t1, "U1", "hello")
        await s.idle()
        assert s.slack.messages(t1.channel)[-1].text.startswith("[sandbox")
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_sdk.oauth.installation_store.models.installation import Installation

from bots.executor import Executor
from bots.mcp.settings import McpSettings
from bots.runtime import Runtime
from bots.serving import Runner
from bots.settings import ServerSettings
from bots.slack.settings import SlackSettings
from bots.teams.settings import TeamsSettings
from bots.web import EXECUTOR, RUNTIME, create_app
from core.db.engine import Database
from core.errors import Conflict
from core.runs import RunRecord, recent_runs
from core.settings import Settings
from core.tenants import Plan, create_plan, create_tenant
from installs.links import link
from installs.slack_store import SlackInstallationStore
from standins.slack.api import SlackStandIn, SlackUser
from standins.slack.requests import APP_ID, SIGNING_SECRET, SignedRequests, Workspace
from standins.teams.connector import BotConnector
from standins.teams.driver import TeamsDriver
from standins.teams.issuer import TokenIssuer
from standins.teams.scenario import APP_ID as TEAMS_APP_ID
from standins.teams.scenario import APP_PASSWORD, TeamsSide, teams_settings

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "standin-client-secret"  # noqa: S105  # the stand-in's
PUBLIC_URL = "https://tenantry.example.com"


# A plan generous enough for a few runs, licensing every built-in capability.
DEFAULT_PLAN = Plan(
    id="team", monthly_tokens=10_000_000, monthly_cost_microcents=10**12,
    monthly_tool_calls=10_000, run_tokens=200_000, run_tool_calls=20,
    run_walltime_ms=60_000, run_cost_microcents=10**10,
    capabilities=frozenset({"counter.bump", "budget.status", "knowledge.search",
                            "audit.recent", "runs.status"}),
)


@dataclass
class Scenario(SignedRequests):
    """A running app and the stand-in it talks to; see the module docstring."""

    settings: Settings
    slack_settings: SlackSettings
    slack: SlackStandIn
    app: web.Application
    url: str
    session: aiohttp.ClientSession
    teams_side: TeamsSide | None = None
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def runtime(self) -> Runtime:
        """The app's runtime (database, agent, audit), as opened by its lifespan."""
        return self.app[RUNTIME]

    @property
    def teams(self) -> TeamsSide:
        """Microsoft's side, for a scenario opened with ``teams=True``."""
        if self.teams_side is None:
            raise RuntimeError("this scenario runs without Teams; open it with teams=True")
        return self.teams_side

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

    async def tenant(self, tenant_id: str, the_plan: Plan | None = None) -> str:
        """Create a tenant (and its plan, once)."""
        the_plan = the_plan or DEFAULT_PLAN
        with contextlib.suppress(Conflict):
            await self.db.run(create_plan, the_plan)
        await self.db.run(create_tenant, tenant_id=tenant_id, name=tenant_id.title(),
                            plan_id=the_plan.id)
        return tenant_id

    async def install(
        self,
        team_id: str,
        *,
        enterprise_id: str | None = None,
        org_wide: bool = False,
        users: Iterable[SlackUser] = (),
    ) -> Workspace:
        """Install the app in a workspace of the stand-in and store the installation.

        The installation goes through ``SlackInstallationStore.async_save`` as an OAuth
        completion would store it (tokens encrypted), without linking it to a tenant.
        For an org-wide install ``team_id`` is a team of the org where people talk.
        """
        installed = enterprise_id if org_wide and enterprise_id else team_id
        token = f"xoxb-{installed}".lower()
        channel = f"C{team_id}"
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
        await self.db.run(link, workspace.enterprise_id, workspace.installed_team, tenant_id,
                          "UINSTALLER")
        return workspace


@asynccontextmanager
async def open_teams_side() -> AsyncIterator[TeamsSide]:
    """Microsoft's side of Teams on loopback: a token issuer and a Bot Connector."""
    async with (TokenIssuer({TEAMS_APP_ID: APP_PASSWORD}) as issuer, BotConnector(issuer) as bc,
                TeamsDriver(issuer, TEAMS_APP_ID) as driver):
        yield TeamsSide(issuer=issuer, connector=bc, driver=driver,
                        settings=teams_settings(issuer, bc))


@asynccontextmanager
async def _teams_side(teams: TeamsSide | bool) -> AsyncIterator[TeamsSide | None]:
    if isinstance(teams, TeamsSide):
        yield teams
    elif teams:
        async with open_teams_side() as side:
            yield side
    else:
        yield None


@asynccontextmanager
async def open_scenario(settings: Settings, slack: SlackStandIn | None = None, *,
                        server: ServerSettings | None = None,
                        teams: TeamsSide | bool = False,
                        mcp: McpSettings | None = None,
                        first_serial: int = 1) -> AsyncIterator[Scenario]:
    """Run the app against a (fresh, or the given unstarted) stand-in for one scenario.

    The app is a complete Slack app pointed at the stand-in, served at ``PUBLIC_URL``;
    ``server`` sets the rest of the server's settings (runs execute in the app's own
    executor unless it sets ``runs_in``). With ``teams`` the app also
    serves Teams, against a local token issuer and Bot Connector (``Scenario.teams``):
    new ones, or those of a ``TeamsSide`` that outlives the app (a restart).
    ``first_serial`` starts the numbering of event and trigger ids: a driver that
    outlives one process (the playground, on a database it keeps) starts it where no
    earlier process counted, or the app drops its events as Slack's retries. ``mcp``
    says where the MCP server listens (``Scenario.app[MCP].url``), if not where the
    environment says.
    """
    async with (slack or SlackStandIn(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                      app_id=APP_ID)) as standin, _teams_side(teams) as side:
        app_settings = SlackSettings(signing_secret=SecretStr(SIGNING_SECRET),
                                     client_id=CLIENT_ID,
                                     client_secret=SecretStr(CLIENT_SECRET),
                                     api_url=standin.base_url)
        server = server or ServerSettings()
        # Scenarios watch runs execute in the app's executor on either database, unless
        # they ask for the workers.
        runs_in = server.runs_in if "runs_in" in server.model_fields_set else "process"
        server = server.model_copy(update={"public_url": PUBLIC_URL, "runs_in": runs_in})
        off = TeamsSettings(app_id=None, app_password=None, app_tenant_id=None)
        app = create_app(settings, server, app_settings, side.settings if side else off,
                         mcp=mcp)
        runner = Runner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = int(runner.addresses[0][1])
            async with aiohttp.ClientSession() as session:
                scenario = Scenario(settings=app[RUNTIME].settings, slack_settings=app_settings,
                                    slack=standin, app=app, url=f"http://127.0.0.1:{port}",
                                    session=session, teams_side=side,
                                    _serial=itertools.count(first_serial))
                if side is not None:
                    side.url, side.runtime = scenario.url, scenario.runtime
                try:
                    yield scenario
                finally:
                    await scenario.idle()
        finally:
            await runner.cleanup()


async def runs_of(scenario: Scenario, tenant_id: str) -> list[RunRecord]:
    """The tenant's runs, oldest first."""
    return list(reversed(await scenario.db.run(recent_runs, tenant_id, limit=100)))
