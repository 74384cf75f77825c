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

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from core.context import TenantContext
from core.db.engine import Database
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


def _check_conversation(conversation_id: str) -> str:
    if (
        not isinstance(conversation_id, str)
        or not conversation_id.strip()
        or len(conversation_id) > MAX_CONVERSATION_ID
    ):
        raise InvalidInput(
            f"conversation_id must be a non-empty string of at most {MAX_CONVERSATION_ID} "
            "characters"
        )
    return conversation_id


class ConversationHistory:
    """The turns of each principal's conversations, in the app database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _key(self, ctx: TenantContext, conversation_id: str) -> tuple[ColumnElement[bool], ...]:
        return (
            conversation_turns.c.tenant_id == ctx.tenant_id,
            conversation_turns.c.principal_id == ctx.principal_id,
            conversation_turns.c.conversation_id == _check_conversation(conversation_id),
        )

    async def append(
        self, ctx: TenantContext, conversation_id: str, role: Role, text: str
    ) -> None:
        """Add one turn at the end of the principal's conversation."""
        await self.db.run(lambda conn: self.append_in(conn, ctx, conversation_id, role, text))

    def append_in(
        self, conn: Connection, ctx: TenantContext, conversation_id: str, role: Role, text: str
    ) -> None:
        """``append`` inside the caller's transaction."""
        _check_conversation(conversation_id)
        if role not in get_args(Role):
            raise InvalidInput(f"role must be one of {get_args(Role)}, got {role!r}")
        if not isinstance(text, str):
            raise InvalidInput("a turn's text must be a string")
        conn.execute(
            conversation_turns.insert().values(
                tenant_id=ctx.tenant_id,
                principal_id=ctx.principal_id,
                conversation_id=conversation_id,
                role=role,
                text=text,
                created_at=datetime.now(UTC),
            )
        )

    async def window(self, ctx: TenantContext, conversation_id: str, limit: int) -> list[Turn]:
        """The newest ``limit`` turns of the principal's conversation, oldest first.

        Raises:
            InvalidInput: ``limit`` is negative or above ``MAX_WINDOW``.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_WINDOW:
            raise InvalidInput(f"limit must be an integer from 0 to {MAX_WINDOW}, got {limit!r}")
        key = self._key(ctx, conversation_id)
        if limit == 0:
            return []
        query = (
            select(
                conversation_turns.c.role,
                conversation_turns.c.text,
                conversation_turns.c.created_at,
            )
            .where(*key)
            .order_by(conversation_turns.c.id.desc())
            .limit(limit)
        )
        async with self.db.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Turn(role=row.role, text=row.text, created_at=_utc(row.created_at))
            for row in reversed(rows)
        ]

    async def forget(self, ctx: TenantContext, conversation_id: str) -> int:
        """Delete the principal's conversation; how many turns went."""
        key = self._key(ctx, conversation_id)
        async with self.db.begin() as conn:
            result = await conn.execute(delete(conversation_turns).where(*key))
        return int(result.rowcount)


async def purge_tenant(conn: AsyncConnection, tenant_id: str) -> int:
    """Delete every conversation turn of a tenant inside the caller's deletion transaction.

    Returns:
        How many turns were deleted.
    """
    result = await conn.execute(
        delete(conversation_turns).where(conversation_turns.c.tenant_id == tenant_id)
    )
    return int(result.rowcount)


def _utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
