"""The local playground: the real server, Slack played by the stand-in, one dev workspace.

``open_playground`` starts what ``tenantry dev`` runs: the app on the embedded defaults,
the offline Slack stand-in, a dev tenant on a dev plan that licenses every capability
the deployment registers (your own included), and a dev workspace installed and
linked through the real OAuth path. ``Playground`` is what the page and ``tenantry dev
say`` drive: it sends what a person would type, signed as Slack signs it, and reads
back what the app posted. The stand-in keeps only the app's messages, so the
playground remembers the person's own, to show whole threads.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from bots.dev.shown import Shown, buttons_of, shown
from core.admin import Admin
from core.errors import InvalidInput, NotFound
from core.settings import SANDBOX_MODEL, Settings
from core.tenants import Plan, create_plan, get_tenant
from standins.slack.api import SlackUser
from standins.slack.driver import Scenario, open_scenario
from standins.slack.oauth import install_through_oauth
from standins.slack.requests import Workspace

Kind = Literal["message", "mention", "command"]
KINDS: tuple[Kind, ...] = ("message", "mention", "command")

DEV_TENANT = "dev"
DEV_TEAM = "T0DEV"
YOU = SlackUser("U0YOU", name="you", real_name="You", is_admin=True)
_BY = "cli:dev"


def dev_plan(capabilities: frozenset[str]) -> Plan:
    """Roomy ceilings for trying things; lower them with ``tenantry plans set dev``."""
    return Plan(id="dev", monthly_tokens=50_000_000, monthly_cost_microcents=10**12,
                monthly_tool_calls=100_000, run_tokens=200_000, run_tool_calls=20,
                run_walltime_ms=120_000, run_cost_microcents=10**10, capabilities=capabilities)


def playground_settings(settings: Settings) -> Settings:
    """The embedded defaults for the playground, where the environment chose nothing else.

    The database is a SQLite file under the data dir unless a URL was given, and the
    model is the sandbox unless a model was named or an Anthropic key is set.
    """
    given = settings.model_fields_set
    update: dict[str, Any] = {}
    if "database_url" not in given:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        update["database_url"] = f"sqlite:///{settings.data_dir / 'playground.db'}"
    if "model" not in given and settings.anthropic_api_key is None:
        update["model"] = SANDBOX_MODEL
    return settings.model_copy(update=update)


@dataclass(frozen=True, slots=True)
class _Said:
    team_id: str
    channel: str
    ts: str
    text: str
    thread_ts: str | None
    author: str


@dataclass
class Playground:
    """A running playground; every method acts as the dev user ``YOU``."""

    scenario: Scenario
    workspaces: dict[str, Workspace]
    tenant_id: str
    capabilities: list[str]
    _said: list[_Said] = field(default_factory=list)
    _last_ts: int = 0

    @property
    def model(self) -> str:
        """The model runs use unless they name one."""
        return self.scenario.settings.model

    def channels(self, team_id: str) -> dict[str, str]:
        """The workspace's conversations the person can write in: id -> label."""
        ws = self.workspace(team_id)
        return {ws.channel: "#general", dm_channel(ws): "Tenantry (direct message)"}

    def workspace(self, team_id: str) -> Workspace:
        """The installed workspace ``team_id``; a clear error for any other."""
        try:
            return self.workspaces[team_id]
        except KeyError:
            raise InvalidInput(f"no workspace {team_id!r} in the playground; known: "
                               f"{', '.join(self.workspaces)}") from None

    def _conversation(self, team_id: str, channel: str) -> Workspace:
        ws = self.workspace(team_id)
        if channel not in self.channels(team_id):
            raise InvalidInput(f"no channel {channel!r} in {team_id}; known: "
                               f"{', '.join(self.channels(team_id))}")
        return ws

    def _ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    async def send(self, team_id: str, channel: str, kind: Kind, text: str,
                   thread_ts: str | None = None) -> str | None:
        """Write ``text`` as the person would; returns its ts (None for a slash command,
        whose visible question the app itself posts).

        Raises:
            InvalidInput: an empty text, an unknown kind, workspace or channel.
        """
        ws = self._conversation(team_id, channel)
        text = text.strip()
        if not text:
            raise InvalidInput("type a message first")
        s = self.scenario
        if kind == "command":
            sent = await s.command(
                Workspace(team_id=ws.team_id, token=ws.token, channel=channel,
                          bot_user_id=ws.bot_user_id), YOU.id, text)
            ack = _ack_text(sent.text)
            if ack:
                self._said.append(_Said(team_id, channel, self._ts(), ack, None, "ack"))
            return None
        ts = self._ts()
        if kind == "mention":
            event = s.mention_event(ws, YOU.id, text, thread_ts=thread_ts)
            shown_text = f"@Tenantry {text}"
        elif kind == "message":
            event = {"type": "message", "user": YOU.id, "text": text, "team": ws.team_id,
                     "channel_type": "im" if channel.startswith("D") else "channel"}
            if thread_ts:
                event["thread_ts"] = thread_ts
            shown_text = text
        else:
            raise InvalidInput(f"unknown kind {kind!r}; one of: {', '.join(KINDS)}")
        event |= {"ts": ts, "event_ts": ts, "channel": channel}
        self._said.append(_Said(team_id, channel, ts, shown_text, thread_ts, "you"))
        await s.event(ws, event)
        return ts

    def messages(self, team_id: str, channel: str) -> list[Shown]:
        """Everything the person sees in a conversation, oldest first."""
        self._conversation(team_id, channel)
        mine = [Shown(ts=m.ts, thread_ts=m.thread_ts, author=m.author, text=m.text)
                for m in self._said if (m.team_id, m.channel) == (team_id, channel)]
        slack = self.scenario.slack
        theirs = [shown(m) for m in slack.messages(channel)]
        theirs += [shown(m) for m in slack.ephemeral_messages(channel) if m.ephemeral_to == YOU.id]
        return sorted(mine + theirs, key=lambda m: float(m.ts))

    async def ask(self, team_id: str, channel: str, kind: Kind, text: str,
                  thread_ts: str | None = None) -> tuple[str | None, list[Shown]]:
        """Send, wait until the runs it started have finished, and return what it brought.

        Returns:
            The thread's ts (for a slash command, that of the question the app posted)
            and its messages, with whatever else the app wrote in the conversation
            meanwhile (a direct message is answered beside it, not in a thread).
        """
        before = {m.ts for m in self.messages(team_id, channel)}
        ts = await self.send(team_id, channel, kind, text, thread_ts)
        await self.idle()
        now = self.messages(team_id, channel)
        root = thread_ts or ts or next(
            (m.ts for m in now if m.ts not in before and m.author == "app"
             and m.thread_ts is None), None)
        return root, [m for m in now if m.ts not in before or root in (m.ts, m.thread_ts)]

    def thread(self, team_id: str, channel: str, ts: str) -> list[Shown]:
        """One thread: its first message and the replies, oldest first."""
        return [m for m in self.messages(team_id, channel) if ts in (m.ts, m.thread_ts)]

    async def press(self, team_id: str, channel: str, message_ts: str, action_id: str,
                    value: str) -> None:
        """Press a button of the app's message (Resume) or of the App Home (Verify)."""
        ws = self.workspace(team_id)
        offered = [b for m in self.messages(team_id, channel) if m.ts == message_ts
                   for b in m.buttons]
        offered += buttons_of(self.home_view(team_id).get("blocks", []))
        if not any((b.action_id, b.value) == (action_id, value) for b in offered):
            raise NotFound("no such button on that message")
        await self.scenario.press(ws, YOU.id, action_id, value, channel=channel,
                                  message_ts=message_ts or self._ts())

    async def open_home(self, team_id: str) -> dict[str, Any]:
        """Open the App Home tab and wait for the view the app publishes."""
        ws = self.workspace(team_id)
        await self.scenario.event(ws, {"type": "app_home_opened", "user": YOU.id,
                                       "channel": dm_channel(ws), "tab": "home",
                                       "event_ts": self._ts()})
        await self.scenario.idle()
        return self.home_view(team_id)

    def home_view(self, team_id: str) -> dict[str, Any]:
        """The App Home view last published for the person, or an empty one."""
        return self.scenario.slack.published_views(YOU.id).get(team_id, {})

    @property
    def busy(self) -> bool:
        """Whether a run or another job is still in flight."""
        return self.scenario.executor.in_flight > 0

    async def idle(self) -> None:
        """Wait until every run started so far has finished."""
        await self.scenario.idle()


def dm_channel(ws: Workspace) -> str:
    """The id of the person's direct-message conversation with the app."""
    return f"D{ws.team_id}"


def _ack_text(body: str) -> str:
    """The text of Bolt's acknowledgement of a slash command (JSON, or plain text)."""
    with contextlib.suppress(ValueError):
        parsed = json.loads(body)
        return str(parsed.get("text", "")) if isinstance(parsed, dict) else ""
    return body


async def _dev_tenant(s: Scenario) -> list[str]:
    """Create or reuse the dev tenant; its plan licenses every registered capability."""
    rt = s.runtime
    names = rt.registry.names()
    admin = Admin(rt.db, rt.audit, rt.keyring, by=_BY)
    try:
        await admin.update_plan("dev", capabilities=names)
    except NotFound:
        await rt.db.run(create_plan, dev_plan(frozenset(names)))
    try:
        await rt.db.run(get_tenant, DEV_TENANT)
    except NotFound:
        await admin.create_tenant(tenant_id=DEV_TENANT, name="Dev", plan_id="dev")
    return names


@asynccontextmanager
async def open_playground(settings: Settings) -> AsyncIterator[Playground]:
    """Start the playground on ``playground_settings(settings)``; stop it on exit."""
    # Event ids are kept (deduplication) in a database that outlives this process.
    first = time.time_ns() // 1000
    async with open_scenario(playground_settings(settings), first_serial=first) as s:
        names = await _dev_tenant(s)
        ws = await install_through_oauth(s, DEV_TEAM, DEV_TENANT, users=[YOU], name="Dev")
        yield Playground(scenario=s, workspaces={ws.team_id: ws}, tenant_id=DEV_TENANT,
                         capabilities=names)


__all__ = ["KINDS", "Kind", "Playground", "Shown", "open_playground"]
