"""Conversation history, keyed ``(tenant, principal, conversation)``.

A conversation id alone (a Slack thread, a Teams conversation) is not a key: the same
id can arrive from two workspaces, and two people may share a thread. So every
read and write is bound to the context's tenant *and* principal, and one principal
never sees what another said to the agent, even in the same channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from core.context import TenantContext
from core.db.engine import reads
from core.db.schema import as_utc
from core.errors import InvalidInput
from core.vectors.tables import conversation_turns

Role = Literal["user", "assistant"]
MAX_CONVERSATION_ID: Final = 300
MAX_WINDOW: Final = 1000


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, as the model will be shown it."""

    role: Role
    text: str
    created_at: datetime


def _key(ctx: TenantContext, conversation_id: str) -> dict[str, str]:
    """The columns that name a principal's conversation, once the id is checked."""
    if (
        not isinstance(conversation_id, str)
        or not conversation_id.strip()
        or len(conversation_id) > MAX_CONVERSATION_ID
    ):
        raise InvalidInput(
            f"conversation_id must be a non-empty string of at most {MAX_CONVERSATION_ID} "
            "characters"
        )
    return {"tenant_id": ctx.tenant_id, "principal_id": ctx.principal_id,
            "conversation_id": conversation_id}


def append_turn(
    conn: Connection, ctx: TenantContext, conversation_id: str, role: Role, text: str
) -> None:
    """Add one turn at the end of the principal's conversation."""
    key = _key(ctx, conversation_id)
    if role not in get_args(Role):
        raise InvalidInput(f"role must be one of {get_args(Role)}, got {role!r}")
    if not isinstance(text, str):
        raise InvalidInput("a turn's text must be a string")
    now = datetime.now(UTC)
    conn.execute(conversation_turns.insert().values(**key, role=role, text=text, created_at=now))


@reads
def conversation_window(
    conn: Connection, ctx: TenantContext, conversation_id: str, limit: int
) -> list[Turn]:
    """The newest ``limit`` turns (at most ``MAX_WINDOW``) of the conversation, oldest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_WINDOW:
        raise InvalidInput(f"limit must be an integer from 0 to {MAX_WINDOW}, got {limit!r}")
    key = _key(ctx, conversation_id)
    c = conversation_turns.c
    rows = conn.execute(
        select(c.role, c.text, c.created_at).filter_by(**key).order_by(c.id.desc()).limit(limit)
    ).all()
    return [
        Turn(role=row.role, text=row.text, created_at=as_utc(row.created_at))
        for row in reversed(rows)
    ]


def purge_history(conn: Connection, tenant_id: str) -> int:
    """Delete every conversation turn of a tenant (part of a purge); how many went."""
    result = conn.execute(delete(conversation_turns).filter_by(tenant_id=tenant_id))
    return int(result.rowcount)

