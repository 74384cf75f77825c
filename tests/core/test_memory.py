"""Tests for core.memory: conversation history keyed (tenant, principal, conversation)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.db.engine import Database
from core.errors import InvalidInput
from core.memory import (
    MAX_WINDOW,
    Role,
    Turn,
    append_turn,
    conversation_window,
    purge_history,
)


class ConversationHistory:
    """The module's functions, each run as a transaction of its own."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(self, ctx: TenantContext, conversation: str, role: Role, text: str) -> None:
        await self.db.run(append_turn, ctx, conversation, role, text)

    async def window(self, ctx: TenantContext, conversation: str, limit: int) -> list[Turn]:
        return await self.db.run(conversation_window, ctx, conversation, limit)


def ctx_for(tenant_id: str, principal_id: str = "slack:T1:U1") -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id=principal_id, principal_kind="user", scope=(),
        ceilings=RunCeilings(1, 1, 1, 1), remaining=MonthlyRemaining(1, 1, 1), initiator="user",
    )


async def say(history: ConversationHistory, ctx: TenantContext, conversation: str,
              *texts: str) -> None:
    for i, text in enumerate(texts):
        await history.append(ctx, conversation, "user" if i % 2 == 0 else "assistant", text)


async def test_the_window_is_the_newest_turns_oldest_first(db: Database) -> None:
    history = ConversationHistory(db)
    ctx = ctx_for("acme")
    await say(history, ctx, "C1:1700.1", "one", "two", "three", "four", "five")
    window = await history.window(ctx, "C1:1700.1", 3)
    assert [(t.role, t.text) for t in window] == [
        ("user", "three"), ("assistant", "four"), ("user", "five")]
    assert all(t.created_at.utcoffset() == timedelta(0) for t in window)
    assert [t.text for t in await history.window(ctx, "C1:1700.1", 50)] == [
        "one", "two", "three", "four", "five"]
    assert await history.window(ctx, "C1:1700.1", 0) == []


async def test_another_principal_in_the_same_conversation_sees_nothing(db: Database) -> None:
    history = ConversationHistory(db)
    await say(history, ctx_for("acme", "slack:T1:U1"), "thread", "my salary question")
    await say(history, ctx_for("acme", "slack:T1:U2"), "thread", "unrelated")
    assert [t.text for t in await history.window(ctx_for("acme", "slack:T1:U2"), "thread", 10)
            ] == ["unrelated"]


async def test_the_same_ids_in_another_tenant_see_nothing(db: Database) -> None:
    history = ConversationHistory(db)
    await say(history, ctx_for("acme"), "general", "acme secret")
    assert await history.window(ctx_for("globex"), "general", 10) == []
    await say(history, ctx_for("globex"), "general", "globex hello")
    assert [t.text for t in await history.window(ctx_for("acme"), "general", 10)] == [
        "acme secret"]


async def test_purge_tenant_deletes_that_tenants_turns_only(db: Database) -> None:
    history = ConversationHistory(db)
    await say(history, ctx_for("acme"), "c", "a1", "a2")
    await say(history, ctx_for("acme", "other"), "d", "a3")
    await say(history, ctx_for("globex"), "c", "g1")
    assert await db.run(purge_history, "acme") == 3
    assert await history.window(ctx_for("acme"), "c", 10) == []
    assert [t.text for t in await history.window(ctx_for("globex"), "c", 10)] == ["g1"]


async def test_concurrent_appends_all_land_in_order_of_commit(db: Database) -> None:
    history = ConversationHistory(db)
    ctx = ctx_for("acme")
    await asyncio.gather(*(history.append(ctx, "busy", "user", f"m{i}") for i in range(20)))
    window = await history.window(ctx, "busy", 100)
    assert sorted(t.text for t in window) == sorted(f"m{i}" for i in range(20))


@pytest.mark.parametrize("conversation", ["", "   ", "x" * 301])
async def test_a_bad_conversation_id_is_refused(db: Database, conversation: str) -> None:
    history = ConversationHistory(db)
    with pytest.raises(InvalidInput, match="conversation_id"):
        await history.append(ctx_for("acme"), conversation, "user", "hi")
    with pytest.raises(InvalidInput, match="conversation_id"):
        await history.window(ctx_for("acme"), conversation, 5)


@pytest.mark.parametrize("limit", [-1, MAX_WINDOW + 1])
async def test_a_bad_limit_is_refused(db: Database, limit: int) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        await ConversationHistory(db).window(ctx_for("acme"), "c", limit)


async def test_a_bad_role_is_refused(db: Database) -> None:
    history = ConversationHistory(db)
    with pytest.raises(InvalidInput, match="role"):
        await history.append(ctx_for("acme"), "c", "system", "hi")  # type: ignore[arg-type]
