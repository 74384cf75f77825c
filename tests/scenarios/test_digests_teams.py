"""A digest posting into a Teams conversation through its stored reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bots.web import CLOCK
from core.admin import Admin
from core.audit import events
from core.digests.destinations import TeamsDestination
from core.digests.records import Digest, get_digest
from standins.teams.activities import Conversation, TeamsUser, group_chat
from tests.scenarios.harness import Scenario, audit_events, runs_of

ORG = "3b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
ADA = TeamsUser("Ada")
FIRE_TIME = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


async def served_digest(teams: Scenario, chat: Conversation) -> Digest:
    """A linked organisation, a conversation the bot answered in, and a digest for it."""
    await teams.tenant("acme")
    await teams.teams.link(ORG, "acme")
    await teams.teams.send(teams.teams.activities.message(chat, ADA, "hello"))
    await teams.idle()
    admin = Admin(teams.db, teams.runtime.audit, teams.runtime.keyring, by="cli:ops")
    # Once a year: the app's own clock must not fire it while a scenario runs.
    return await admin.add_digest("acme", name="Weekly wrap", cron="0 3 1 1 *",
                                  prompt="Summarise the week",
                                  destination=TeamsDestination(ORG, chat.id))


async def test_a_digest_posts_into_a_conversation_the_bot_was_served_in(
        teams: Scenario) -> None:
    chat = group_chat(ORG)
    digest = await served_digest(teams, chat)

    for _ in range(2):  # two clocks, or a retry: one firing
        await teams.app[CLOCK].fire("acme", digest.id, FIRE_TIME)
        await teams.idle()

    texts = teams.teams.texts(chat.id)
    assert len(texts) == 2, "the answer to hello, then one digest"
    assert texts[-1].startswith("**Weekly wrap**") and "[sandbox" in texts[-1]
    answer = teams.teams.connector.messages(chat.id)[-1]
    assert answer.app_id == teams.teams.settings.app_id  # with the bot's own token
    runs = await runs_of(teams, "acme")
    assert [r.initiator for r in runs] == ["user", "cron"]


async def test_a_conversation_forgotten_by_an_unlink_pauses_the_digest(
        teams: Scenario) -> None:
    from installs.teams_links import revoke_teams

    chat = group_chat(ORG)
    digest = await served_digest(teams, chat)
    await teams.db.run(revoke_teams, teams.runtime.audit, ORG, "operator", by="cli:ops")

    await teams.app[CLOCK].fire("acme", digest.id, FIRE_TIME)
    await teams.idle()

    assert len(teams.teams.texts(chat.id)) == 1
    stored = await teams.db.run(get_digest, "acme", digest.id)
    assert (stored.status, stored.paused_reason) == ("paused", "destination_revoked")
    [paused] = await audit_events(teams, "acme", events.DIGEST_PAUSED)
    assert paused.fields["detail"] == "link_revoked"
