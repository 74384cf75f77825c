"""Where a digest posts: a Slack channel or a Teams conversation, stored as JSON.

Checked for shape here; whether the tenant may post there (its links, its stored
conversations) is ``installs.destinations``'s to say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import InvalidInput

_SLACK_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_CONVERSATION_ID = 512


def _slack_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _SLACK_ID.match(value):
        raise InvalidInput(f"Slack {kind} id must be 1-32 letters or digits, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SlackDestination:
    """A channel of a linked Slack workspace (``enterprise_id`` for an org's workspace)."""

    team_id: str
    channel: str
    enterprise_id: str | None = None
    kind: Literal["slack"] = "slack"

    def __post_init__(self) -> None:
        _slack_id("team", self.team_id)
        _slack_id("channel", self.channel)
        if self.enterprise_id is not None:
            _slack_id("enterprise", self.enterprise_id)

    def as_json(self) -> dict[str, Any]:
        return {"kind": "slack", "enterprise_id": self.enterprise_id, "team_id": self.team_id,
                "channel": self.channel}

    def describe(self) -> str:
        """How an operator reads it."""
        return f"slack channel {self.channel} in {self.team_id}"


@dataclass(frozen=True, slots=True)
class TeamsDestination:
    """A Teams conversation the bot was served in before (its reference is stored)."""

    entra_tenant_id: str
    conversation_id: str
    kind: Literal["teams"] = "teams"

    def __post_init__(self) -> None:
        if not _GUID.match(self.entra_tenant_id.lower()):
            raise InvalidInput(f"Entra tenant id must be a GUID, got {self.entra_tenant_id!r}")
        object.__setattr__(self, "entra_tenant_id", self.entra_tenant_id.lower())
        value = self.conversation_id
        if (not 0 < len(value) <= MAX_CONVERSATION_ID or not value.isascii()
                or not value.isprintable()):
            raise InvalidInput("Teams conversation id must be 1-512 printable ASCII characters")

    def as_json(self) -> dict[str, Any]:
        return {"kind": "teams", "entra_tenant_id": self.entra_tenant_id,
                "conversation_id": self.conversation_id}

    def describe(self) -> str:
        """How an operator reads it."""
        return f"teams conversation {self.conversation_id}"


Destination = SlackDestination | TeamsDestination


def destination_from_json(value: Any) -> Destination:
    """A stored (or given) destination, checked.

    Raises:
        InvalidInput: an unknown kind or malformed ids.
    """
    if not isinstance(value, dict):
        raise InvalidInput("a digest destination is an object with a kind")
    if value.get("kind") == "slack":
        enterprise = value.get("enterprise_id") or None
        return SlackDestination(team_id=_slack_id("team", value.get("team_id")),
                                channel=_slack_id("channel", value.get("channel")),
                                enterprise_id=None if enterprise is None
                                else _slack_id("enterprise", enterprise))
    if value.get("kind") == "teams":
        entra, conversation = value.get("entra_tenant_id"), value.get("conversation_id")
        if not isinstance(entra, str) or not isinstance(conversation, str):
            raise InvalidInput("a Teams destination needs entra_tenant_id and conversation_id")
        return TeamsDestination(entra_tenant_id=entra, conversation_id=conversation)
    raise InvalidInput(f"unknown destination kind {value.get('kind')!r}; known: slack, teams")
