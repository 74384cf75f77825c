"""A stand-in for the Bot Connector REST API v3 (Teams' ``serviceUrl``) on loopback.

The Agents SDK's ``TeamsConnectorClient`` talks to it at ``service_url``, which carries a
region path as Teams' does (``https://smba.trafficmanager.net/amer/``), so a client that
drops the path is caught. It answers what the SDK 1.9 calls to converse:

- ``POST v3/conversations/{conversation}/activities`` (send) and
  ``.../activities/{activity}`` (reply): ``201 {"id": ...}`` for a message, and streaming
  as ``conversations`` describes; a plain ``typing`` activity shows the indicator (200);
- ``PUT .../activities/{activity}`` (update): ``200 {"id": ...}``; ``DELETE``: 200;
- ``POST v3/conversations`` (a 1:1 chat for a proactive message): ``201 {"id": ...}``,
  the same chat each time for the same bot, tenant and person, as Teams does.

Conversation ids arrive as the SDK puts them in the path, unencoded (``a:1...``,
``19:...@thread.tacv2;messageid=...``) or percent-encoded; both mean the same id.

Every call needs ``Authorization: Bearer <token>`` with an access token that the
``TokenIssuer``'s token endpoint issued for ``https://api.botframework.com``; any other
call is refused with 401 and recorded as refused.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from aiohttp import hdrs, web

from standins.loopback import LoopbackServer
from standins.teams.activities import JsonDict
from standins.teams.conversations import (
    Answer,
    ConnectorError,
    Conversations,
    TeamsMessage,
)
from standins.teams.issuer import TokenIssuer, TokenRefused

__all__ = ["BotConnector", "ConnectorCall", "ConnectorError", "TeamsMessage"]

REGION: Final = "amer"
Operation: TypeAlias = Literal["send", "reply", "update", "delete", "create_conversation"]
_DENIED: Final = {"message": "Authorization has been denied for this request."}


@dataclass(frozen=True, slots=True)
class ConnectorCall:
    """One request to the connector, as answered.

    ``activity_id`` is the activity the call made or touched (a new message's id, a
    stream's id, the updated or deleted id); ``reply_to_id`` the one a reply answers.
    ``app_id`` is the bearer token's ``appid``; ``error`` the refusal's code, or None
    when the call was acted on; ``at`` the connector's clock on arrival.
    """

    operation: Operation
    method: str
    conversation_id: str | None
    activity_id: str | None
    reply_to_id: str | None
    activity: JsonDict | None
    app_id: str | None
    at: float
    status: int
    error: str | None

    @property
    def accepted(self) -> bool:
        """Whether the connector acted on the call."""
        return self.error is None


_Handler: TypeAlias = Callable[["BotConnector", str, str, JsonDict | None, str], Answer]


class BotConnector(Conversations, LoopbackServer):
    """The Bot Connector on ``127.0.0.1`` at a free port, for as long as ``async with`` lasts.

    Args:
        issuer: Whose access tokens the connector accepts.
        clock: The clock behind ``ConnectorCall.at``.
    """

    def __init__(self, issuer: TokenIssuer, *, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.issuer = issuer
        self.clock = clock
        self._calls: list[ConnectorCall] = []
        self._failures: deque[ConnectorError] = deque()
        self._changed = asyncio.Condition()

    @property
    def service_url(self) -> str:
        """The ``serviceUrl`` to put in activities; ends in ``/`` as Teams' do."""
        return f"{self.base_url}/{REGION}/"

    def fail_next(self, status: int, code: str, message: str) -> None:
        """Refuse the next authorised send, reply, update or delete with this error.

        Refusals queue up, one call each; the body is ``{"error": {"code", "message"}}``.
        """
        self._failures.append(ConnectorError(status, code, message))

    def calls(
        self, conversation_id: str | None = None, *, operation: Operation | None = None
    ) -> list[ConnectorCall]:
        """Every call in arrival order, refused ones too, narrowed to a conversation or
        an operation."""
        return [c for c in self._calls
                if (conversation_id is None or c.conversation_id == conversation_id)
                and (operation is None or c.operation == operation)]

    async def wait_for(
        self, conversation_id: str, count: int, *,
        timeout: float = 5.0,  # noqa: ASYNC109  # a bounded wait whose failure says what came
    ) -> list[TeamsMessage]:
        """The conversation's messages once there are at least ``count``.

        Raises:
            TimeoutError: Fewer arrived within ``timeout`` seconds; says which did.
        """
        def arrived() -> bool:
            return len(self.messages(conversation_id)) >= count

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(arrived), timeout)
            except TimeoutError:
                seen = [m.text for m in self.messages(conversation_id)]
                raise TimeoutError(f"{conversation_id}: wanted {count} messages within "
                                   f"{timeout}s, saw {len(seen)}: {seen!r}") from None
        return self.messages(conversation_id)

    def routes(self) -> list[web.RouteDef]:
        root = f"/{REGION}/v3/conversations"
        one = root + "/{conversation_id}/activities/{activity_id}"
        return [
            web.post(root, self._serving("create_conversation", _create)),
            web.post(root + "/{conversation_id}/activities", self._serving("send", _post)),
            web.post(one, self._serving("reply", _post)),
            web.put(one, self._serving("update", _update)),
            web.delete(one, self._serving("delete", _delete)),
        ]

    def _serving(
        self, operation: Operation, handler: _Handler
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a route: check the bearer token, parse the body, answer, record the call."""

        async def serve(request: web.Request) -> web.Response:
            arrived = self.clock()
            raw = await request.read()
            body = _json_object(raw)
            conversation_id = request.match_info.get("conversation_id", "")
            path_activity_id = request.match_info.get("activity_id", "")
            app_id: str | None = None
            try:
                app_id = self._caller(request)
                if raw and body is None:
                    raise ConnectorError(400, "BadSyntax", "The request body is not a JSON object")
                if operation != "create_conversation" and self._failures:
                    raise self._failures.popleft()
                answer = handler(self, conversation_id, path_activity_id, body, app_id)
            except _Unauthorized as refused:
                answer = Answer(401, dict(_DENIED), error=str(refused))
            except ConnectorError as refused:
                answer = Answer(refused.status, refused.body(), error=refused.code)
            if operation == "create_conversation" and body is not None:
                body = body.get("activity") if isinstance(body.get("activity"), dict) else None
            self._calls.append(ConnectorCall(
                operation=operation, method=request.method,
                conversation_id=answer.conversation_id or conversation_id or None,
                activity_id=answer.activity_id or path_activity_id or None,
                reply_to_id=path_activity_id if operation == "reply" else None,
                activity=body, app_id=app_id, at=arrived, status=answer.status,
                error=answer.error,
            ))
            async with self._changed:
                self._changed.notify_all()
            if answer.body is None:
                return web.Response(status=answer.status)
            return web.json_response(answer.body, status=answer.status)

        return serve

    def _caller(self, request: web.Request) -> str:
        """The ``appid`` of the request's valid access token."""
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Unauthorized("no bearer token")
        try:
            claims = self.issuer.check_access_token(token.strip())
        except TokenRefused as refused:
            raise _Unauthorized(str(refused)) from refused
        return str(claims["appid"])


class _Unauthorized(Exception):
    """The call carried no access token the issuer vouches for."""


def _activity(body: JsonDict | None) -> JsonDict:
    if body is None or not body.get("type"):
        raise ConnectorError(400, "BadSyntax", "The request body must be an activity")
    return body


def _create(connector: BotConnector, conversation_id: str, activity_id: str,
            body: JsonDict | None, app_id: str) -> Answer:
    return connector.create_chat(body or {}, app_id)


def _post(connector: BotConnector, conversation_id: str, activity_id: str,
          body: JsonDict | None, app_id: str) -> Answer:
    return connector.post(conversation_id, activity_id or None, _activity(body), app_id)


def _update(connector: BotConnector, conversation_id: str, activity_id: str,
            body: JsonDict | None, app_id: str) -> Answer:
    return connector.update(conversation_id, activity_id, _activity(body))


def _delete(connector: BotConnector, conversation_id: str, activity_id: str,
            body: JsonDict | None, app_id: str) -> Answer:
    return connector.delete(conversation_id, activity_id)


def _json_object(raw: bytes) -> JsonDict | None:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
