"""What the Teams transport remembers of conversations: where to answer, and what it saw.

A conversation reference (the Bot Connector's ``serviceUrl``, the conversation, the bot,
the channel, the Entra tenant, the activity) is what a later, proactive message needs:
an answer to a resumed run, a scheduled digest. ``teams_conversations`` keeps the latest
one per ``(tenant, conversation)``; it is read only for a named tenant, so a tenant
never posts into a conversation it learnt under another tenant's link. Revoking an
Entra tenant's link forgets its references.

The Bot Connector retries an activity it thinks was not acknowledged in time, with the
same id. The first delivery wins a row in ``teams_activities``; a repeat is dropped
before any run starts. Teams message ids are millisecond timestamps, unique only
within a conversation, so the conversation is part of the key. (Slack's
``slack_events`` is not reused: an Entra tenant id does not fit its ``team_id``, and
the Teams side must not lean on a Slack transport module.)

Every function runs inside the caller's transaction (``Database.run``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, String, Table, Text, delete, select
from sqlalchemy.engine import Connection

from core.context import check_id
from core.db.engine import dialect_insert, reads
from core.db.schema import UTCDateTime, metadata
from core.errors import InvalidInput
from installs.principals import check_guid

MAX_CONVERSATION_ID = 512
MAX_ACTIVITY_ID = 256

teams_conversations = Table(
    "teams_conversations",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("conversation_id", String(MAX_CONVERSATION_ID), primary_key=True),
    Column("entra_tenant_id", String(64), nullable=False, index=True),
    Column("reference", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

teams_activities = Table(
    "teams_activities",
    metadata,
    Column("entra_tenant_id", String(64), primary_key=True),
    Column("conversation_id", String(MAX_CONVERSATION_ID), primary_key=True),
    Column("activity_id", String(MAX_ACTIVITY_ID), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False, index=True),
)


def check_platform_id(kind: str, value: str, longest: int) -> str:
    """``value`` if it is a Teams id of printable ASCII, at most ``longest`` long.

    Conversation and activity ids are opaque (``19:abc@thread.tacv2;messageid=1``,
    ``a:1Xy...``); keeping them to printable ASCII bounds what a key can hold.

    Raises:
        InvalidInput: empty, too long, or holding other characters.
    """
    if (not isinstance(value, str) or not 0 < len(value) <= longest
            or not value.isascii() or not value.isprintable()):
        raise InvalidInput(f"Teams {kind} id must be 1-{longest} printable ASCII characters")
    return value


def remember_conversation(
    conn: Connection, tenant_id: str, entra_tenant_id: str, conversation_id: str,
    reference: Mapping[str, Any],
) -> None:
    """Keep the latest reference to a conversation the tenant was served in (an upsert).

    Call it only after the Entra tenant's link resolved to ``tenant_id``.

    Args:
        reference: JSON-ready: ``serviceUrl``, the conversation's id and type, the bot's
            id, ``channelId``, the Entra tenant id, the activity id. No message text.

    Raises:
        InvalidInput: a malformed id, or a reference that is not JSON.
    """
    check_id("tenant", tenant_id)
    entra = check_guid("Entra tenant id", entra_tenant_id)
    check_platform_id("conversation", conversation_id, MAX_CONVERSATION_ID)
    try:
        encoded = json.dumps(dict(reference), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a conversation reference must be JSON: {exc}") from None
    insert = dialect_insert(conn, teams_conversations).values(
        tenant_id=tenant_id, conversation_id=conversation_id, entra_tenant_id=entra,
        reference=encoded, updated_at=datetime.now(UTC),
    )
    conn.execute(insert.on_conflict_do_update(
        index_elements=[teams_conversations.c.tenant_id, teams_conversations.c.conversation_id],
        set_={name: insert.excluded[name]
              for name in ("entra_tenant_id", "reference", "updated_at")},
    ))


@reads
def conversation_reference(
    conn: Connection, tenant_id: str, conversation_id: str
) -> dict[str, Any] | None:
    """The tenant's latest reference to a conversation; ``None`` if it has none."""
    c = teams_conversations.c
    stored = conn.scalar(select(c.reference).where(
        c.tenant_id == tenant_id, c.conversation_id == conversation_id
    ))
    if stored is None:
        return None
    reference: dict[str, Any] = json.loads(stored)
    return reference


def forget_conversations(conn: Connection, entra_tenant_id: str) -> int:
    """Delete every conversation reference learnt from an Entra tenant; how many."""
    entra = check_guid("Entra tenant id", entra_tenant_id)
    return int(conn.execute(delete(teams_conversations).where(
        teams_conversations.c.entra_tenant_id == entra
    )).rowcount)


def first_activity(
    conn: Connection, activity_id: str, entra_tenant_id: str, conversation_id: str
) -> bool:
    """Claim an activity; ``False`` when it was seen before (a retry or a duplicate).

    One ``INSERT .. ON CONFLICT DO NOTHING``, read back through ``RETURNING``:
    psycopg reports ``rowcount`` -1 for it.

    Raises:
        InvalidInput: a malformed id.
    """
    claimed = conn.scalar(
        dialect_insert(conn, teams_activities)
        .values(
            entra_tenant_id=check_guid("Entra tenant id", entra_tenant_id),
            conversation_id=check_platform_id(
                "conversation", conversation_id, MAX_CONVERSATION_ID),
            activity_id=check_platform_id("activity", activity_id, MAX_ACTIVITY_ID),
            seen_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing()
        .returning(teams_activities.c.activity_id)
    )
    return claimed is not None


def forget_activities_before(conn: Connection, age: timedelta) -> int:
    """Drop activities seen more than ``age`` ago: the connector's retries stop sooner."""
    return int(conn.execute(delete(teams_activities).where(
        teams_activities.c.seen_at < datetime.now(UTC) - age
    )).rowcount)
