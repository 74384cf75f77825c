"""Inbound activities shaped as Teams sends them to a bot, for the driver, demo and tests.

Ids follow Teams' forms, and the Bot Connector stand-in reads a conversation's type
from them (``conversation_type_of``):

- a person: ``29:1<base64>`` with an Entra object id (``aadObjectId``); the bot: ``28:<app id>``;
- a personal (1:1) chat with the bot: ``a:1<base64>``;
- a group chat: ``19:<hex>@thread.v2``;
- a channel: ``19:<hex>@thread.tacv2``; a thread in it adds ``;messageid=<root id>``, and
  that is the conversation id of every message in the thread, the root post included;
- message ids: milliseconds since the epoch, as strings; event activity ids: ``f:<digits>``.

In a group chat or channel Teams sends the bot only messages that @mention it, so
``message`` adds the mention there unless told not to.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias

JsonDict: TypeAlias = dict[str, Any]
ConversationType: TypeAlias = Literal["personal", "groupChat", "channel"]

BOT_NAME: Final = "Tenantry"
ADAPTIVE_CARD: Final = "application/vnd.microsoft.card.adaptive"
_last_message_id = 0


def conversation_type_of(conversation_id: str) -> ConversationType:
    """The conversation type Teams' id forms imply: ``19:`` ids are group chats or channels.

    Any other id (``a:1...`` and whatever a test makes up) counts as a personal chat.
    """
    if not conversation_id.startswith("19:"):
        return "personal"
    thread = conversation_id.split(";", 1)[0]
    return "channel" if thread.endswith(("@thread.tacv2", "@thread.skype")) else "groupChat"


def _opaque() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(24)).decode("ascii").rstrip("=")


def message_id() -> str:
    """A fresh Teams message id: epoch milliseconds, increasing within the process."""
    global _last_message_id
    _last_message_id = max(time.time_ns() // 1_000_000, _last_message_id + 1)
    return str(_last_message_id)


def _event_id() -> str:
    return f"f:{secrets.randbelow(10**18):018d}"


@dataclass(frozen=True, slots=True)
class TeamsUser:
    """A person in a tenant: the Teams id and the Entra object id Teams sends with it."""

    name: str
    id: str = field(default_factory=lambda: f"29:1{_opaque()}")
    aad_object_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def account(self) -> JsonDict:
        """The ``from`` (or member) object of an activity."""
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id}


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where an activity happens: a chat, or a thread in a team's channel.

    ``team_id`` and ``channel_id`` are set for a channel; ``thread_root`` is the id of the
    thread's root post, which the conversation id ends with.
    """

    id: str
    type: ConversationType
    tenant_id: str
    team_id: str | None = None
    channel_id: str | None = None
    thread_root: str | None = None

    def account(self) -> JsonDict:
        """The ``conversation`` object of an activity."""
        body: JsonDict = {"conversationType": self.type, "tenantId": self.tenant_id,
                          "id": self.id}
        if self.type != "personal":
            body["isGroup"] = True
        return body

    def channel_data(self) -> JsonDict:
        """The ``channelData`` every activity here carries: tenant, and team and channel."""
        data: JsonDict = {"tenant": {"id": self.tenant_id}}
        if self.team_id is not None and self.channel_id is not None:
            data |= {"teamsTeamId": self.team_id, "teamsChannelId": self.channel_id,
                     "team": {"id": self.team_id}, "channel": {"id": self.channel_id}}
        return data


def personal_chat(tenant_id: str) -> Conversation:
    """A new 1:1 chat between a person and the bot."""
    return Conversation(id=f"a:1{_opaque()}", type="personal", tenant_id=tenant_id)


def group_chat(tenant_id: str) -> Conversation:
    """A new group chat the bot is a member of."""
    return Conversation(id=f"19:{secrets.token_hex(16)}@thread.v2", type="groupChat",
                        tenant_id=tenant_id)


def channel_thread(
    tenant_id: str, *, team_id: str | None = None, channel_id: str | None = None,
    root_id: str | None = None,
) -> Conversation:
    """A thread in a team's channel (by default the team's General channel, a new thread)."""
    team = team_id or f"19:{secrets.token_hex(16)}@thread.tacv2"
    channel = channel_id or team
    root = root_id or message_id()
    return Conversation(id=f"{channel};messageid={root}", type="channel", tenant_id=tenant_id,
                        team_id=team, channel_id=channel, thread_root=root)


@dataclass(frozen=True, slots=True)
class Activities:
    """Builds what Teams POSTs to the bot ``app_id``, naming ``service_url`` to answer at."""

    app_id: str
    service_url: str
    bot_name: str = BOT_NAME

    @property
    def bot(self) -> JsonDict:
        """The bot's account, as ``recipient`` and in mentions."""
        return {"id": f"28:{self.app_id}", "name": self.bot_name}

    def _base(
        self, kind: str, where: Conversation, sender: TeamsUser, activity_id: str | None
    ) -> JsonDict:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            "type": kind, "id": activity_id or _event_id(), "timestamp": now,
            "localTimestamp": now, "channelId": "msteams", "serviceUrl": self.service_url,
            "from": sender.account(), "conversation": where.account(),
            "recipient": self.bot, "channelData": where.channel_data(), "locale": "en-US",
            "entities": [{"type": "clientInfo", "locale": "en-US", "country": "US",
                          "platform": "Web", "timezone": "Europe/London"}],
        }

    def message(
        self, where: Conversation, sender: TeamsUser, text: str, *, mention: bool | None = None,
        activity_id: str | None = None, attachments: Iterable[JsonDict] = (),
    ) -> JsonDict:
        """A message from ``sender``; ``mention`` (default: outside personal chats) @mentions
        the bot, as Teams requires for the bot to hear it there.

        In a channel thread a message other than the root post replies to the root.
        """
        activity = self._base("message", where, sender, activity_id or message_id())
        activity |= {"text": text, "textFormat": "plain", "attachments": list(attachments)}
        if mention if mention is not None else where.type != "personal":
            at = f"<at>{self.bot_name}</at>"
            activity["text"] = f"{at} {text}"
            activity["entities"].append({"type": "mention", "mentioned": self.bot, "text": at})
        if where.thread_root is not None and activity["id"] != where.thread_root:
            activity["replyToId"] = where.thread_root
        return activity

    def installation_update(
        self, where: Conversation, sender: TeamsUser, action: Literal["add", "remove"] = "add",
        *, activity_id: str | None = None,
    ) -> JsonDict:
        """The app was installed (``add``) in, or removed from, ``where`` by ``sender``."""
        activity = self._base("installationUpdate", where, sender, activity_id)
        activity["action"] = action
        if where.channel_id is not None:
            activity["channelData"]["settings"] = {"selectedChannel": {"id": where.channel_id}}
        return activity

    def conversation_update(
        self, where: Conversation, sender: TeamsUser, *,
        members_added: Iterable[TeamsUser | str] | None = None,
        members_removed: Iterable[TeamsUser | str] = (), activity_id: str | None = None,
    ) -> JsonDict:
        """Members joined or left ``where``; by default the bot itself was added."""
        def accounts(members: Iterable[TeamsUser | str]) -> list[JsonDict]:
            return [m.account() if isinstance(m, TeamsUser) else {"id": m} for m in members]

        activity = self._base("conversationUpdate", where, sender, activity_id)
        added = accounts(members_added) if members_added is not None else [{"id": self.bot["id"]}]
        if added:
            activity["membersAdded"] = added
        if removed := accounts(members_removed):
            activity["membersRemoved"] = removed
        if where.team_id is not None:
            event = "teamMemberAdded" if added else "teamMemberRemoved"
            activity["channelData"]["eventType"] = event
        return activity

    def card_action(
        self, where: Conversation, sender: TeamsUser, verb: str,
        data: Mapping[str, Any] | None = None, *, reply_to_id: str | None = None,
        activity_id: str | None = None,
    ) -> JsonDict:
        """``sender`` pressed an ``Action.Execute`` button with ``verb`` on a bot's card.

        ``reply_to_id`` is the id of the message that carries the card.
        """
        activity = self._base("invoke", where, sender, activity_id)
        activity |= {"name": "adaptiveCard/action", "value": {
            "action": {"type": "Action.Execute", "verb": verb, "data": dict(data or {})},
            "trigger": "manual",
        }}
        activity["channelData"]["source"] = {"name": "message"}
        if reply_to_id is not None:
            activity["replyToId"] = reply_to_id
            activity["channelData"]["legacy"] = {"replyToId": reply_to_id}
        return activity
