from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from core.db.engine import Database
from core.errors import InvalidInput
from installs.teams_conversations import (
    MAX_CONVERSATION_ID,
    conversation_reference,
    first_activity,
    forget_activities_before,
    forget_conversations,
    remember_conversation,
    teams_activities,
)
from tests.support.databases import execute

E1 = "0a1b2c3d-0000-4000-8000-00000000e001"
E2 = "0a1b2c3d-0000-4000-8000-00000000e002"
CHANNEL = "19:0f1e2d3c4b5a@thread.tacv2;messageid=1700000000000"
PERSONAL = "a:1" + "Xy9_-" * 60


def reference(conversation_id: str, activity_id: str = "1700000000000") -> dict[str, object]:
    return {"serviceUrl": "https://smba.trafficmanager.net/emea/", "channelId": "msteams",
            "conversation": {"id": conversation_id, "conversationType": "personal",
                             "tenantId": E1},
            "bot": {"id": "28:bot"}, "activityId": activity_id}


async def test_a_reference_is_kept_per_tenant_and_read_only_by_that_tenant(
    db: Database,
) -> None:
    await db.run(remember_conversation, "acme", E1.upper(), PERSONAL, reference(PERSONAL))
    assert await db.run(conversation_reference, "acme", PERSONAL) == reference(PERSONAL)
    assert await db.run(conversation_reference, "globex", PERSONAL) is None
    assert await db.run(conversation_reference, "acme", CHANNEL) is None

    await db.run(remember_conversation, "acme", E1, PERSONAL, reference(PERSONAL, "17"))
    await db.run(remember_conversation, "globex", E2, PERSONAL, reference(PERSONAL, "18"))
    assert await db.run(conversation_reference, "acme", PERSONAL) == reference(PERSONAL, "17")
    assert await db.run(conversation_reference, "globex", PERSONAL) == reference(PERSONAL, "18")

    assert await db.run(forget_conversations, E1) == 1
    assert await db.run(conversation_reference, "acme", PERSONAL) is None
    assert await db.run(conversation_reference, "globex", PERSONAL) is not None


@pytest.mark.parametrize(("tenant_id", "entra", "conversation", "ref"), [
    ("Acme!", E1, CHANNEL, {}),
    ("acme", "not-a-guid", CHANNEL, {}),
    ("acme", E1, "", {}),
    ("acme", E1, "x" * (MAX_CONVERSATION_ID + 1), {}),
    ("acme", E1, "19:ü@thread", {}),
    ("acme", E1, "19:a\n@thread", {}),
    ("acme", E1, CHANNEL, {"when": datetime.now(UTC)}),
])
async def test_malformed_ids_and_references_are_refused(
    db: Database, tenant_id: str, entra: str, conversation: str, ref: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput):
        await db.run(remember_conversation, tenant_id, entra, conversation, ref)


async def test_an_activity_is_claimed_once_per_conversation(db: Database) -> None:
    assert await db.run(first_activity, "1700000000000", E1, CHANNEL)
    assert not await db.run(first_activity, "1700000000000", E1.upper(), CHANNEL)
    assert await db.run(first_activity, "1700000000000", E1, PERSONAL)
    assert await db.run(first_activity, "1700000000000", E2, CHANNEL)
    with pytest.raises(InvalidInput):
        await db.run(first_activity, "", E1, CHANNEL)

    await execute(db, update(teams_activities)
                  .where(teams_activities.c.conversation_id == CHANNEL)
                  .values(seen_at=datetime.now(UTC) - timedelta(hours=2)))
    assert await db.run(forget_activities_before, timedelta(hours=1)) == 2
    assert await db.run(first_activity, "1700000000000", E1, CHANNEL)
    assert not await db.run(first_activity, "1700000000000", E1, PERSONAL)
