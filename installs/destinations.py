"""Whether a digest may still post where it was told to: the link and the conversation.

A Slack destination needs an active link of its workspace (or org) to the digest's
tenant; a Teams destination an active link of its Entra tenant to it and a stored
reference to the conversation. A workspace relinked to another tenant is no
destination of this one's any more.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from core.db.engine import reads
from core.digests.destinations import Destination, SlackDestination
from installs.links import resolve
from installs.teams_conversations import conversation_reference
from installs.teams_links import resolve_teams


@reads
def destination_problem(conn: Connection, tenant_id: str, destination: Destination) -> str | None:
    """Why ``tenant_id`` cannot post to ``destination``, or ``None`` if it can.

    Returns:
        ``not_linked``, ``link_revoked`` or ``conversation_unknown``.
    """
    if isinstance(destination, SlackDestination):
        link = resolve(conn, destination.enterprise_id, destination.team_id, False)
        if link is None or link.tenant_id != tenant_id:
            return "not_linked"
        return None if link.active else "link_revoked"
    teams = resolve_teams(conn, destination.entra_tenant_id)
    if teams is None or teams.tenant_id != tenant_id:
        return "not_linked"
    if not teams.active:
        return "link_revoked"
    if conversation_reference(conn, tenant_id, destination.conversation_id) is None:
        return "conversation_unknown"
    return None
