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

``tests/standins/test_slack_api.py`` drives it through slack_sdk and Bolt.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import hdrs, web

from standins.loopback import LoopbackServer
from standins.slack.methods import StandInMethods
from standins.slack.state import (
    DEFAULT_SCOPES,
    JsonDict,
    RecordedCall,
    SlackApiFailure,
    SlackMessage,
    SlackUser,
)

__all__ = ["DEFAULT_SCOPES", "SlackMessage", "SlackStandIn", "SlackUser"]

_JSON_FIELDS = ("blocks", "attachments", "chunks", "view", "metadata")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class SlackStandIn(StandInMethods, LoopbackServer):
    """Slack's Web API on ``127.0.0.1`` at a free port, for as long as ``async with`` lasts."""

    @property
    def base_url(self) -> str:
        """The URL to give ``AsyncWebClient(base_url=...)``; ends in ``/`` as the SDK expects."""
        return f"{super().base_url}/api/"

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/api/{method}", self._handle)]

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        arrived = self.clock()
        token = _bearer(request)
        params: JsonDict = {}
        status, headers = 200, dict[str, str]()
        try:
            params, form_token = await _read_params(request)
            token = token or form_token
            if self._failures[method]:
                scripted, retry_after = self._failures[method].popleft()
                if scripted == "ratelimited":
                    status, headers = 429, {hdrs.RETRY_AFTER: str(retry_after)}
                raise SlackApiFailure(scripted)
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
        error = None if body["ok"] else str(body["error"])
        self._calls.append(
            RecordedCall(method, token, self.team_of(token), params, arrived, error, status)
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
