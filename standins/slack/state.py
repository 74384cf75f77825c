"""What the Slack Web API stand-in knows: installs, tokens, messages, Home views, calls.

Payloads are raw Slack JSON, so ``Any`` appears here and nowhere past the transport edge.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, TypeAlias

JsonDict: TypeAlias = dict[str, Any]
StreamState: TypeAlias = Literal["streaming", "stopped", "expired"]

DEFAULT_SCOPES: Final = (
    "app_mentions:read",
    "assistant:write",
    "chat:write",
    "commands",
    "im:history",
    "im:write",
    "users:read",
)


class SlackApiFailure(Exception):
    """A Web API method answered ``{"ok": false, "error": error}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True, slots=True)
class SlackUser:
    """A scripted member of a workspace, as ``users.info`` describes them.

    ``is_org_admin`` fills ``enterprise_user`` on Enterprise Grid, where an org admin
    need not be an admin of the workspace itself.
    """

    id: str
    name: str = ""
    real_name: str = ""
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    deleted: bool = False
    is_org_admin: bool = False


@dataclass(frozen=True, slots=True)
class Workspace:
    """One installation of the app: a workspace, or a Grid org when ``team_id == enterprise_id``."""

    team_id: str
    name: str
    enterprise_id: str | None
    enterprise_name: str | None
    bot_user_id: str
    bot_id: str
    scopes: tuple[str, ...]

    @property
    def is_enterprise_install(self) -> bool:
        """True for an org-wide install, whose token ``auth.test`` reports with the org's id."""
        return self.enterprise_id is not None and self.team_id == self.enterprise_id

    @property
    def url(self) -> str:
        """The workspace (or org) URL that ``auth.test`` returns."""
        slug = self.team_id.lower()
        host = f"{slug}.enterprise" if self.is_enterprise_install else slug
        return f"https://{host}.slack.com/"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A message as people would see it now: streams, updates and stops applied.

    ``stream_state`` is None for an ordinary post; ``ephemeral_to`` names the only user
    who sees an ephemeral message. ``updated_at`` is the stand-in's clock at the last write.
    """

    ts: str
    channel: str
    team_id: str
    user: str
    bot_id: str
    text: str
    blocks: tuple[JsonDict, ...] = ()
    thread_ts: str | None = None
    chunks: tuple[JsonDict, ...] = ()
    stream_state: StreamState | None = None
    edited: bool = False
    ephemeral_to: str | None = None
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One request the stand-in answered, kept so tests can say whose token did what.

    ``team_id`` is the workspace the token belonged to when called; ``params`` have their
    JSON-string fields (``blocks``, ``view``) decoded; ``at`` is the stand-in's clock on
    arrival; ``status`` is 429 for a rate-limited call.
    """

    method: str
    token: str | None
    team_id: str | None
    params: Mapping[str, Any]
    at: float
    error: str | None
    status: int


@dataclass(frozen=True, slots=True)
class _InstallCode:
    team_id: str
    installer: str
    redirect_uri: str | None
    user_token: str | None
    user_scopes: tuple[str, ...]


class StandInState:
    """Workspaces, tokens, messages, Home views, OAuth codes and calls of one stand-in.

    Args:
        client_id: The app's OAuth client id that ``oauth.v2.access`` accepts.
        client_secret: The matching client secret.
        app_id: The app id reported in messages, views and installs.
        stream_idle_timeout: Seconds without an append after which a stream expires, as
            Slack's undocumented server-side timeout does; None never expires on its own.
        clock: The monotonic clock behind timeouts and call times, replaceable in tests.
    """

    def __init__(
        self,
        *,
        client_id: str = "1111.2222",
        client_secret: str = "standin-client-secret",  # noqa: S107 - a fixture value
        app_id: str = "A0TENANTRY",
        stream_idle_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.app_id = app_id
        self.stream_idle_timeout = stream_idle_timeout
        self.clock = clock
        self._workspaces: dict[str, Workspace] = {}
        self._tokens: dict[str, str] = {}
        self._revoked: dict[str, str] = {}
        self._users: dict[str, dict[str, SlackUser]] = {}
        self._channels: dict[str, str] = {}
        self._messages: dict[str, dict[str, SlackMessage]] = {}
        self._views: dict[tuple[str, str], JsonDict] = {}
        self._codes: dict[str, _InstallCode] = {}
        self._calls: list[RecordedCall] = []
        self._failures: defaultdict[str, deque[tuple[str, int]]] = defaultdict(deque)
        self._last_ts = 0
        self._serial = 0

    def add_workspace(
        self,
        team_id: str,
        bot_token: str,
        enterprise_id: str | None = None,
        *,
        users: Iterable[SlackUser] = (),
        channels: Iterable[str] = (),
        name: str | None = None,
        enterprise_name: str | None = None,
        scopes: Iterable[str] = DEFAULT_SCOPES,
    ) -> Workspace:
        """Install the app in a workspace (again): its bot token answers from now on.

        Calling it again for the same team adds another valid token, as a reinstall does.
        For an Enterprise Grid org-wide install pass the org id as both ``team_id`` and
        ``enterprise_id``. A listed channel belongs to this workspace: another workspace's
        token posting there gets ``channel_not_found``; unlisted channels take any token.
        """
        owner = self._tokens.get(bot_token)
        if owner is not None and owner != team_id:
            raise ValueError(f"token already belongs to workspace {owner}")
        prefix = "W" if enterprise_id else "U"
        workspace = Workspace(
            team_id=team_id,
            name=name or f"Workspace {team_id}",
            enterprise_id=enterprise_id,
            enterprise_name=(enterprise_name or f"Org {enterprise_id}") if enterprise_id else None,
            bot_user_id=f"{prefix}{team_id}BOT",
            bot_id=f"B{team_id}",
            scopes=tuple(scopes),
        )
        self._workspaces[team_id] = workspace
        self._tokens[bot_token] = team_id
        self._revoked.pop(bot_token, None)
        self._users.setdefault(team_id, {}).update({user.id: user for user in users})
        self._channels.update(dict.fromkeys(channels, team_id))
        return workspace

    def revoke_token(self, token: str, error: str = "invalid_auth") -> None:
        """Make a token fail every call with ``error`` (uninstall, ``tokens_revoked``)."""
        self._revoked[token] = error

    def add_install_code(
        self,
        code: str,
        team_id: str,
        installer: str,
        *,
        redirect_uri: str | None = None,
        user_token: str | None = None,
        user_scopes: Iterable[str] = (),
    ) -> None:
        """Script an OAuth ``code`` that ``oauth.v2.access`` trades once for ``team_id``'s install.

        The answer carries the workspace's latest valid bot token; ``installer`` is the
        ``authed_user``. A ``redirect_uri`` given here must be sent again with the exchange.
        """
        if team_id not in self._workspaces:
            raise ValueError(f"no workspace {team_id}; add_workspace first")
        self._codes[code] = _InstallCode(
            team_id, installer, redirect_uri, user_token, tuple(user_scopes)
        )

    def fail_next(self, method: str, error: str = "ratelimited", *, retry_after: int = 1) -> None:
        """Make the next call of ``method`` fail; calls queue up, one failure each.

        ``ratelimited`` answers HTTP 429 with ``Retry-After: retry_after`` (whole seconds,
        as slack_sdk's ``AsyncRateLimitErrorRetryHandler`` parses it); any other Slack
        error string answers HTTP 200 ``{"ok": false, "error": error}``.
        """
        self._failures[method].append((error, retry_after))

    def calls(
        self, method: str | None = None, *, token: str | None = None, team_id: str | None = None
    ) -> list[RecordedCall]:
        """Recorded calls in arrival order, narrowed to a method, a token or a workspace."""
        return [
            call
            for call in self._calls
            if (method is None or call.method == method)
            and (token is None or call.token == token)
            and (team_id is None or call.team_id == team_id)
        ]

    def expire_streams(self) -> int:
        """End every open stream as Slack's server-side timeout does; returns how many."""
        expired = 0
        for stored in self._messages.values():
            for key, message in stored.items():
                if message.stream_state == "streaming":
                    stored[key] = replace(message, stream_state="expired")
                    expired += 1
        return expired

    def messages(self, channel: str) -> list[SlackMessage]:
        """The channel's messages and thread replies in ``ts`` order, ephemeral ones left out."""
        return [self._settle(m) for m in self._stored(channel) if m.ephemeral_to is None]

    def ephemeral_messages(self, channel: str) -> list[SlackMessage]:
        """Messages shown to one user each (``chat.postEphemeral``), in ``ts`` order."""
        return [m for m in self._stored(channel) if m.ephemeral_to is not None]

    def published_views(self, user_id: str) -> dict[str, JsonDict]:
        """The latest Home tab view published for ``user_id``, keyed by the publishing team id."""
        return {team: view for (team, user), view in self._views.items() if user == user_id}

    def team_of(self, token: str | None) -> str | None:
        """The workspace a token belongs to (even a revoked one), for the call record."""
        return None if token is None else self._tokens.get(token)

    def scopes_of(self, token: str | None) -> str | None:
        """The ``X-OAuth-Scopes`` header value for a valid token, which Bolt reads."""
        team = self.team_of(token)
        if team is None or token in self._revoked:
            return None
        return ",".join(self._workspaces[team].scopes)

    def caller(self, token: str | None) -> Workspace:
        """The installation a token authenticates, or Slack's refusal."""
        if not token:
            raise SlackApiFailure("not_authed")
        if token in self._revoked:
            raise SlackApiFailure(self._revoked[token])
        team = self._tokens.get(token)
        if team is None:
            raise SlackApiFailure("invalid_auth")
        return self._workspaces[team]

    def _stored(self, channel: str) -> list[SlackMessage]:
        return list(self._messages.get(channel, {}).values())

    def _settle(self, message: SlackMessage) -> SlackMessage:
        idle = self.clock() - message.updated_at
        timeout = self.stream_idle_timeout
        if message.stream_state == "streaming" and timeout is not None and idle > timeout:
            message = replace(message, stream_state="expired")
            self._messages[message.channel][message.ts] = message
        return message

    def _next_ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{self._serial:09d}"

    def _store(self, message: SlackMessage) -> SlackMessage:
        message = replace(message, updated_at=self.clock())
        self._messages.setdefault(message.channel, {})[message.ts] = message
        return message

    def _channel(self, caller: Workspace, params: Mapping[str, Any]) -> tuple[str, str]:
        """The channel to write to and the team it lives in, if ``caller`` may reach it."""
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise SlackApiFailure("channel_not_found")
        owner = self._channels.get(channel, caller.team_id)
        same_org = self._workspaces[owner].enterprise_id == caller.enterprise_id
        if owner != caller.team_id and not (caller.is_enterprise_install and same_org):
            raise SlackApiFailure("channel_not_found")
        return channel, owner

    def _own_message(
        self, caller: Workspace, params: Mapping[str, Any], *, not_mine: str = "message_not_found"
    ) -> SlackMessage:
        """The caller's own message at ``params``' channel and ts; ``not_mine`` if another's."""
        channel, _ = self._channel(caller, params)
        found = self._messages.get(channel, {}).get(str(params.get("ts")))
        if found is None or found.ephemeral_to is not None:
            raise SlackApiFailure("message_not_found")
        if found.user != caller.bot_user_id:
            raise SlackApiFailure(not_mine)
        return self._settle(found)

    def _user(self, caller: Workspace, user_id: str) -> tuple[Workspace, SlackUser]:
        teams = [caller.team_id]
        if caller.is_enterprise_install:
            teams = [t for t, w in self._workspaces.items() if w.enterprise_id == caller.team_id]
        for team in teams:
            if user_id in self._users.get(team, {}):
                return self._workspaces[team], self._users[team][user_id]
        raise SlackApiFailure("user_not_found")
