"""Where a digest's outcome goes: one poster per kind of destination, registered at mount.

``fire_digest`` (``bots.digests``) knows no platform. It hands a ``Notice`` to the
poster registered in ``Runtime.posters`` under its destination's kind (``"slack"``,
``"teams"``); each transport registers its own when it is mounted (or when a process
without the web app, the clock, builds its transports' clients).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from core.digests.destinations import Destination

NoticeKind = Literal["answer", "halt", "refusal", "failure"]


@dataclass(frozen=True, slots=True)
class Notice:
    """What a digest posts, in plain words; the poster adds its platform's markup.

    Attributes:
        title: The digest's name.
        text: The answer, or what stopped the digest and who can act.
        kind: ``answer`` for a completed run; anything else is also told to the admins.
    """

    title: str
    text: str
    kind: NoticeKind = "answer"


class Poster(Protocol):
    """Posts digests into one platform's destinations."""

    async def post(self, tenant_id: str, destination: Destination, notice: Notice) -> None:
        """Post ``notice`` into ``destination`` with the tenant's own credentials.

        Raises:
            NotFound: the destination is gone (no installation, no conversation, a
                channel the app cannot write to): the digest is paused.
        """
        ...

    async def tell_admins(self, tenant_id: str, destination: Destination,
                          notice: Notice) -> int:
        """Send ``notice`` to the tenant's admins this platform can reach; how many."""
        ...
