"""A stand-in for Slack's Web API on loopback, for the test suite and the offline demo.

The real ``slack_sdk`` ``AsyncWebClient`` talks to it through ``base_url``, so request
building, token headers, JSON parsing, error raising and retry handlers all run as in
production while the workspaces, users and installs are scripted. It speaks the wire
protocol of ``https://slack.com/api/``:

- a method is ``POST`` (or ``GET``) ``{base_url}{method}``; parameters come from the query
  string, a form-encoded or multipart body, or a JSON body;
- the token is ``Authorization: Bearer xoxb-...`` or a ``token`` field of a form body;
  Slack reads no token from a JSON body, nor (for apps created since February 2021) from
  the query string, so neither does the stand-in: such a call answers ``not_authed``;
- every answer is HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``,
  except a rate limit: HTTP 429, ``Retry-After: <seconds>``, ``{"error": "ratelimited"}``;
- ``oauth.v2.access`` takes the app's client id and secret by HTTP Basic auth or as
  ``client_id``/``client_secret`` parameters instead of a token.

Example::

    async with SlackStandIn() as slack:
        slack.add_workspace("T1", "xoxb-t1", users=[SlackUser("U1", is_admin=True)])
        client = AsyncWebClient(token="xoxb-t1", base_url=slack.base_url)
        posted = await client.chat_postMessage(channel="C1", text="hi")
        assert slack.messages("C1")[0].text == "hi"
        assert slack.calls("chat.postMessage", token="xoxb-t1")
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import hdrs, web

from standins.slack.methods import StandInMethods
from standins.slack.state import (
    DEFAULT_SCOPES,
    JsonDict,
    RecordedCall,
    SlackApiFailure,
    SlackMessage,
    SlackUser,
    Workspace,
)

__all__ = [
    "DEFAULT_SCOPES",
    "RecordedCall",
    "SlackMessage",
    "SlackStandIn",
    "SlackUser",
    "Workspace",
]

_JSON_FIELDS = ("blocks", "attachments", "chunks", "view", "metadata")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True, slots=True)
class _Failure:
    error: str
    retry_after: int | None


class SlackStandIn(StandInMethods):
    """Slack's Web API on ``127.0.0.1`` at a free port, for as long as ``async with`` lasts.

    Besides the registry inherited from ``StandInState`` (``add_workspace``,
    ``add_install_code``, ``revoke_token``, ``messages``, ``ephemeral_messages``,
    ``published_views``, ``expire_streams``), it records every call and can be told to
    fail the next call of a method.
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
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            app_id=app_id,
            stream_idle_timeout=stream_idle_timeout,
            clock=clock,
        )
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._calls: list[RecordedCall] = []
        self._failures: defaultdict[str, deque[_Failure]] = defaultdict(deque)

    @property
    def base_url(self) -> str:
        """The URL to give ``AsyncWebClient(base_url=...)``; ends in ``/`` as the SDK expects."""
        if self._runner is None:
            raise RuntimeError("SlackStandIn is not running; use `async with`")
        return f"http://127.0.0.1:{self._port}/api/"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_next(self, method: str, error: str = "ratelimited", *, retry_after: int = 1) -> None:
        """Make the next call of ``method`` fail; calls queue up, one failure each.

        ``ratelimited`` answers HTTP 429 with ``Retry-After: retry_after`` (whole seconds,
        as slack_sdk's ``AsyncRateLimitErrorRetryHandler`` parses it); any other Slack
        error string answers HTTP 200 ``{"ok": false, "error": error}``.
        """
        wait = retry_after if error == "ratelimited" else None
        self._failures[method].append(_Failure(error, wait))

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

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        arrived = self.clock()
        token = _bearer(request)
        params: JsonDict = {}
        status, headers = 200, dict[str, str]()
        try:
            params, form_token = await _read_params(request)
            token = token or form_token
            failure = self._failures[method].popleft() if self._failures[method] else None
            if failure is not None and failure.retry_after is not None:
                status, headers = 429, {hdrs.RETRY_AFTER: str(failure.retry_after)}
            if failure is not None:
                raise SlackApiFailure(failure.error)
            if method == "oauth.v2.access":
                client_id, secret = _client_credentials(request, params)
                body = self.exchange_code(client_id, secret, params)
            else:
                body = self.answer(method, token, params)
                headers["X-OAuth-Scopes"] = self.scopes_of(token) or ""
        except SlackApiFailure as failed:
            body = {"ok": False, "error": failed.error}
            if failed.error == "unknown_method":
                body["req_method"] = method
        self._calls.append(
            RecordedCall(
                method=method,
                token=token,
                team_id=self.team_of(token),
                params=params,
                at=arrived,
                error=None if body["ok"] else str(body["error"]),
                status=status,
            )
        )
        return web.json_response(body, status=status, headers=headers)


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _client_credentials(request: web.Request, params: JsonDict) -> tuple[str | None, str | None]:
    """The app credentials of an OAuth exchange: HTTP Basic first, as Slack recommends."""
    scheme, _, encoded = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "basic":
        return params.get("client_id"), params.get("client_secret")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("latin1")
    except binascii.Error:
        return None, None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


async def _read_params(request: web.Request) -> tuple[JsonDict, str | None]:
    """Parameters as Slack reads them, and the token of a form body if it carried one."""
    params: JsonDict = {k: v for k, v in request.query.items() if k != "token"}
    form_token: str | None = None
    if request.method == hdrs.METH_POST and request.body_exists:
        if request.content_type == "application/json":
            try:
                body: Any = await request.json()
            except ValueError as bad:
                raise SlackApiFailure("invalid_json") from bad
            if not isinstance(body, dict):
                raise SlackApiFailure("json_not_object")
            body.pop("token", None)
            params.update(body)
        elif request.content_type in _FORMS:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
            form_token = params.pop("token", None)
        else:
            raise SlackApiFailure("invalid_post_type")
    for name in _JSON_FIELDS:
        if isinstance(params.get(name), str):
            try:
                params[name] = json.loads(params[name])
            except ValueError as bad:
                raise SlackApiFailure("invalid_arguments") from bad
    return params, form_token
