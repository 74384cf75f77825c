"""Posting digests into Teams: a proactive message through the stored conversation reference.

Registered as the runtime's ``"teams"`` poster when the transport is mounted. The
reference is the one the tenant's link stored when the bot was last served in the
conversation (``installs.teams_conversations``), so a digest never posts into a
conversation learnt under another tenant's link.

Admins: a proactive 1:1 message to a person needs a personal conversation the bot was
already served in, which Tenantry does not keep per person; a halt or a refusal is
posted in the digest's own conversation only (``tell_admins`` reaches nobody else).
"""

from __future__ import annotations

from bots.posting import Notice
from bots.runtime import Runtime
from bots.teams import render
from bots.teams.answer import TeamsDelivery
from core.digests.destinations import Destination, TeamsDestination
from core.errors import NotFound
from installs.teams_conversations import conversation_reference


class TeamsPoster:
    """The ``"teams"`` poster of a runtime."""

    def __init__(self, runtime: Runtime, answers: TeamsDelivery) -> None:
        self.runtime = runtime
        self.answers = answers

    async def post(self, tenant_id: str, destination: Destination, notice: Notice) -> None:
        """Continue the stored conversation and post the notice.

        Raises:
            NotFound: no stored reference, or the Bot Connector refused the message.
        """
        assert isinstance(destination, TeamsDestination)
        reference = await self.runtime.db.run(conversation_reference, tenant_id,
                                              destination.conversation_id)
        if reference is None:
            raise NotFound(f"no stored Teams conversation {destination.conversation_id!r}")
        if not await self.answers.say(reference, render.digest(notice.title, notice.text)):
            raise NotFound(f"Teams conversation {destination.conversation_id!r} not reachable")

    async def tell_admins(self, tenant_id: str, destination: Destination,
                          notice: Notice) -> int:
        """Nobody beyond the conversation (see the module docstring)."""
        return 0
