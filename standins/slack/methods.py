"""The Web API methods the Slack stand-in answers, one method of (caller, params) each.

Shapes follow Slack's method reference (docs.slack.dev/reference/methods): the JSON
returned here is what goes after ``"ok": true``. Streaming follows what slack_sdk 3.48's
``chat_startStream``/``chat_appendStream``/``chat_stopStream``, and its ``chat_stream``
helper on top of them, send: ``markdown_text`` and/or ``chunks`` (``markdown_text``,
``task_update``, ``plan_update``, ``blocks``), and a stream ended by Slack's timeout
answers ``message_not_in_streaming_state`` to both append and stop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, TypeAlias

from standins.slack.state import (
    JsonDict,
    SlackApiFailure,
    SlackMessage,
    SlackUser,
    StandInState,
    Workspace,
)

Params: TypeAlias = Mapping[str, Any]
Handler: TypeAlias = Callable[["StandInMethods", Workspace, Params], JsonDict]

_CHUNK_TYPES: Final = frozenset({"markdown_text", "task_update", "plan_update", "blocks"})


def _blocks(params: Params) -> tuple[JsonDict, ...] | None:
    blocks = params.get("blocks")
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise SlackApiFailure("invalid_blocks")
    return tuple(blocks)


def _text(params: Params) -> str | None:
    text = params.get("markdown_text", params.get("text"))
    return None if text is None else str(text)


def message_json(message: SlackMessage, app_id: str) -> JsonDict:
    """The ``message`` object that chat methods return for a bot-authored message."""
    body: JsonDict = {
        "user": message.user,
        "type": "message",
        "ts": message.ts,
        "bot_id": message.bot_id,
        "app_id": app_id,
        "text": message.text,
        "team": message.team_id,
    }
    if message.blocks:
        body["blocks"] = list(message.blocks)
    if message.thread_ts:
        body["thread_ts"] = message.thread_ts
    if message.edited:
        body["edited"] = {"user": message.user, "ts": message.ts}
    return body


def user_json(workspace: Workspace, user: SlackUser, *, locale: bool) -> JsonDict:
    """The ``user`` object of ``users.info``; Grid members also carry ``enterprise_user``."""
    body: JsonDict = {
        "id": user.id,
        "team_id": workspace.team_id,
        "name": user.name or user.id.lower(),
        "deleted": user.deleted,
        "real_name": user.real_name,
        "tz": "Europe/London",
        "tz_label": "Greenwich Mean Time",
        "tz_offset": 0,
        "profile": {
            "real_name": user.real_name,
            "display_name": user.name,
            "real_name_normalized": user.real_name,
            "display_name_normalized": user.name,
            "team": workspace.team_id,
        },
        "is_admin": user.is_admin,
        "is_owner": user.is_owner,
        "is_primary_owner": user.is_primary_owner,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "is_bot": False,
        "is_app_user": False,
        "updated": 1_700_000_000,
    }
    if workspace.enterprise_id is not None:
        body["enterprise_user"] = {
            "id": user.id,
            "enterprise_id": workspace.enterprise_id,
            "enterprise_name": workspace.enterprise_name,
            "is_admin": user.is_org_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "teams": [workspace.team_id],
        }
    if locale:
        body["locale"] = "en-US"
    return body


def chunk_text(chunks: object) -> tuple[str, tuple[JsonDict, ...]]:
    """The markdown that chunks add to a stream, and the chunks; ``invalid_chunks`` if bad."""
    if chunks is None:
        return "", ()
    if not isinstance(chunks, list):
        raise SlackApiFailure("invalid_chunks")
    text = ""
    for chunk in chunks:
        if not isinstance(chunk, dict) or chunk.get("type") not in _CHUNK_TYPES:
            raise SlackApiFailure("invalid_chunks")
        if chunk["type"] == "markdown_text":
            text += str(chunk.get("text", ""))
    return text, tuple(chunks)


class StandInMethods(StandInState):
    """The stand-in's state plus the behaviour of each supported Web API method."""

    def answer(self, method: str, token: str | None, params: Params) -> JsonDict:
        """Run one Web API method for a bearer token; raises ``SlackApiFailure`` to refuse."""
        handler = _METHODS.get(method)
        if handler is None:
            raise SlackApiFailure("unknown_method")
        return {"ok": True, **handler(self, self.caller(token), params)}

    def exchange_code(self, client_id: str | None, secret: str | None, params: Params) -> JsonDict:
        """``oauth.v2.access``: trade a scripted code for the install, as Slack's OAuth does."""
        if client_id != self.client_id:
            raise SlackApiFailure("invalid_client_id")
        if secret != self.client_secret:
            raise SlackApiFailure("bad_client_secret")
        if params.get("grant_type", "authorization_code") != "authorization_code":
            raise SlackApiFailure("invalid_grant_type")
        code = self._codes.pop(str(params.get("code")), None)
        if code is None:
            raise SlackApiFailure("invalid_code")
        if code.redirect_uri is not None and params.get("redirect_uri") != code.redirect_uri:
            raise SlackApiFailure("bad_redirect_uri")
        workspace = self._workspaces[code.team_id]
        valid = [t for t, team in self._tokens.items() if team == code.team_id]
        token = next((t for t in reversed(valid) if t not in self._revoked), None)
        if token is None:
            raise SlackApiFailure("invalid_code")
        authed_user: JsonDict = {"id": code.installer}
        if code.user_token is not None:
            scope = ",".join(code.user_scopes)
            authed_user |= {"scope": scope, "access_token": code.user_token, "token_type": "user"}
        enterprise = workspace.enterprise_id
        return {
            "ok": True,
            "app_id": self.app_id,
            "authed_user": authed_user,
            "scope": ",".join(workspace.scopes),
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": workspace.bot_user_id,
            "team": None
            if workspace.is_enterprise_install
            else {"id": workspace.team_id, "name": workspace.name},
            "enterprise": {"id": enterprise, "name": workspace.enterprise_name}
            if enterprise
            else None,
            "is_enterprise_install": workspace.is_enterprise_install,
        }

    def _auth_test(self, caller: Workspace, params: Params) -> JsonDict:
        body: JsonDict = {
            "url": caller.url,
            "team": caller.name,
            "user": "tenantry",
            "team_id": caller.team_id,
            "user_id": caller.bot_user_id,
            "bot_id": caller.bot_id,
            "is_enterprise_install": caller.is_enterprise_install,
        }
        if caller.enterprise_id is not None:
            body["enterprise_id"] = caller.enterprise_id
        return body

    def _post(self, caller: Workspace, params: Params, **extra: Any) -> SlackMessage:
        text, blocks = _text(params), _blocks(params)
        if not text and not blocks and not params.get("attachments"):
            raise SlackApiFailure("no_text")
        return self._new_message(caller, params, text=text or "", blocks=blocks or (), **extra)

    def _new_message(self, caller: Workspace, params: Params, **fields: Any) -> SlackMessage:
        """Store a new message by the caller's bot in ``params``' channel (and thread)."""
        channel, team = self._channel(caller, params)
        thread_ts = params.get("thread_ts")
        return self._store(
            SlackMessage(
                ts=self._next_ts(),
                channel=channel,
                team_id=team,
                user=caller.bot_user_id,
                bot_id=caller.bot_id,
                thread_ts=None if thread_ts is None else str(thread_ts),
                **fields,
            )
        )

    def _post_message(self, caller: Workspace, params: Params) -> JsonDict:
        message = self._post(caller, params)
        return {
            "channel": message.channel,
            "ts": message.ts,
            "message": message_json(message, self.app_id),
        }

    def _post_ephemeral(self, caller: Workspace, params: Params) -> JsonDict:
        user = params.get("user")
        if not isinstance(user, str) or not user:
            raise SlackApiFailure("user_not_in_channel")
        return {"message_ts": self._post(caller, params, ephemeral_to=user).ts}

    def _update(self, caller: Workspace, params: Params) -> JsonDict:
        found = self._own_message(caller, params, not_mine="cant_update_message")
        text, blocks = _text(params), _blocks(params)
        if text is None and blocks is None:
            raise SlackApiFailure("no_text")
        message = self._store(
            replace(
                found,
                text=found.text if text is None else text,
                blocks=found.blocks if blocks is None else blocks,
                edited=True,
            )
        )
        return {
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": message_json(message, self.app_id),
        }

    def _start_stream(self, caller: Workspace, params: Params) -> JsonDict:
        channel, _ = self._channel(caller, params)
        if channel[:1] in ("C", "G"):
            if not params.get("recipient_user_id"):
                raise SlackApiFailure("missing_recipient_user_id")
            if not params.get("recipient_team_id"):
                raise SlackApiFailure("missing_recipient_team_id")
        added, chunks = chunk_text(params.get("chunks"))
        text = str(params.get("markdown_text", "")) + added
        message = self._new_message(
            caller, params, text=text, chunks=chunks, stream_state="streaming"
        )
        return {"channel": message.channel, "ts": message.ts}

    def _streaming(self, caller: Workspace, params: Params, *, required: bool) -> SlackMessage:
        """The caller's open stream with ``params``' text and chunks appended."""
        found = self._own_message(caller, params)
        if found.stream_state != "streaming":
            raise SlackApiFailure("message_not_in_streaming_state")
        added, chunks = chunk_text(params.get("chunks"))
        markdown = params.get("markdown_text")
        if required and markdown is None and not chunks:
            raise SlackApiFailure("no_text")
        text = found.text + ("" if markdown is None else str(markdown)) + added
        return replace(found, text=text, chunks=found.chunks + chunks)

    def _append_stream(self, caller: Workspace, params: Params) -> JsonDict:
        message = self._store(self._streaming(caller, params, required=True))
        return {"channel": message.channel, "ts": message.ts}

    def _stop_stream(self, caller: Workspace, params: Params) -> JsonDict:
        message = self._streaming(caller, params, required=False)
        blocks = _blocks(params)
        message = self._store(
            replace(message, stream_state="stopped", blocks=blocks or message.blocks)
        )
        body: JsonDict = {
            "text": message.text,
            "bot_id": message.bot_id,
            "ts": message.ts,
            "type": "message",
            "subtype": "bot_message",
        }
        if message.blocks:
            body["blocks"] = list(message.blocks)
        return {"channel": message.channel, "ts": message.ts, "message": body}

    def _publish_view(self, caller: Workspace, params: Params) -> JsonDict:
        user_id, view = params.get("user_id"), params.get("view")
        if not isinstance(user_id, str) or not isinstance(view, dict) or view.get("type") != "home":
            raise SlackApiFailure("invalid_arguments")
        key = (caller.team_id, user_id)
        current = self._views.get(key)
        if current is not None and params.get("hash") not in (None, current["hash"]):
            raise SlackApiFailure("hash_conflict")
        view_id = current["id"] if current else self._next_id("V")
        published: JsonDict = {
            "id": view_id,
            "team_id": caller.team_id,
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "clear_on_close": False,
            "notify_on_close": False,
            **view,
            "hash": self._next_ts(),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.app_id,
            "app_installed_team_id": caller.team_id,
            "bot_id": caller.bot_id,
        }
        self._views[key] = published
        return {"view": published}

    def _users_info(self, caller: Workspace, params: Params) -> JsonDict:
        workspace, user = self._user(caller, str(params.get("user")))
        locale = params.get("include_locale") in (True, 1, "1", "true")
        return {"user": user_json(workspace, user, locale=locale)}


_METHODS: dict[str, Handler] = {
    "auth.test": StandInMethods._auth_test,
    "chat.postMessage": StandInMethods._post_message,
    "chat.postEphemeral": StandInMethods._post_ephemeral,
    "chat.update": StandInMethods._update,
    "chat.startStream": StandInMethods._start_stream,
    "chat.appendStream": StandInMethods._append_stream,
    "chat.stopStream": StandInMethods._stop_stream,
    "views.publish": StandInMethods._publish_view,
    "users.info": StandInMethods._users_info,
}
