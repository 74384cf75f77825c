"""What Slack sends an app, signed as Slack signs it: commands, events, buttons, pages.

``SignedRequests`` is the half of the local driver's ``Scenario`` that plays Slack (and
a browser, for the OAuth pages) towards the real app. Requests are really signed:
``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret,
computed here from the published scheme rather than by the SDK under test.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy

from bots.slack.settings import SlackSettings
from standins.slack.api import SlackStandIn

SIGNING_SECRET = "local-signing-secret"  # noqa: S105  # the stand-in's, never a real app's
APP_ID = "A0TENANTRY"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


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

    For an org-wide install (``org_wide``) the installation is the org's, and ``team_id``
    is a team of the org where people talk. ``token`` is the bot token every post must carry.
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


class SignedRequests:
    """Slack's side of a scenario: every request it sends the app, signed."""

    slack: SlackStandIn
    slack_settings: SlackSettings
    url: str
    session: aiohttp.ClientSession
    _serial: itertools.count[int]

    def next_ts(self) -> str:
        """A fresh Slack message ts for a message a person writes."""
        return f"{int(time.time())}.{next(self._serial):06d}"

    def sign(self, body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
        """The two headers Slack adds to every request it sends."""
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
    ) -> Sent:
        """POST ``body`` to the events URL signed as Slack would (or with ``signed`` as is)."""
        sent_headers = {"Content-Type": content_type, **(headers or {})}
        sent_headers.update(signed if signed is not None
                            else self.sign(body, timestamp or int(time.time())))
        return await self._send("POST", "/slack/events", data=body, headers=sent_headers)

    async def get(self, path: str, *, cookie: str | None = None) -> Sent:
        """GET a page as a browser would, without following redirects."""
        headers = {"Cookie": cookie} if cookie else {}
        return await self._send("GET", path, headers=headers, allow_redirects=False)

    async def _send(self, method: str, path: str, **options: Any) -> Sent:
        started = time.monotonic()
        async with self.session.request(method, self.url + path, **options) as resp:
            text = await resp.text()
            return Sent(resp.status, text, resp.headers, time.monotonic() - started)

    async def command(self, ws: Workspace, user: str, text: str) -> Sent:
        """The app's slash command typed by ``user`` in the channel of ``ws``."""
        form = {
            "token": "deprecated-verification-token",
            "team_id": ws.team_id,
            "team_domain": ws.team_id.lower(),
            "channel_id": ws.channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": self.slack_settings.command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "true" if ws.org_wide else "false",
            "response_url": f"{self.slack.base_url}response_url.{next(self._serial)}",
            "trigger_id": f"{next(self._serial)}.1234.abcdef",
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
                      thread_ts: str | None = None) -> dict[str, Any]:
        """An ``app_mention`` event as a person writing ``@Tenantry text`` produces."""
        event: dict[str, Any] = {
            "type": "app_mention", "user": user, "text": f"<@{ws.bot_user_id}> {text}",
            "ts": self.next_ts(), "channel": ws.channel, "team": ws.team_id,
            "event_ts": self.next_ts(),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return event

    async def mention(self, ws: Workspace, user: str, text: str, *,
                      thread_ts: str | None = None) -> str:
        """Mention the app; returns the mention's ts (the thread it is answered in)."""
        return await self._delivered(ws, self.mention_event(ws, user, text, thread_ts=thread_ts))

    async def dm(self, ws: Workspace, user: str, text: str, *, channel: str = "D0001") -> str:
        """A direct message to the app (``message.im``); returns its ts."""
        event = {
            "type": "message", "channel_type": "im", "user": user, "text": text,
            "ts": self.next_ts(), "channel": channel, "team": ws.team_id,
            "event_ts": self.next_ts(),
        }
        return await self._delivered(ws, event)

    async def _delivered(self, ws: Workspace, event: Mapping[str, Any]) -> str:
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
