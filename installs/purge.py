"""What a purged tenant leaves in the Slack transport's tables: nothing.

Its workspace links, the installations and tokens of the linked workspaces, and its
install links not yet used go in the purge's own transaction (``core.purge``).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from installs.link_tokens import INSTALL_LINK, install_link_nonces
from installs.links import slack_links
from installs.slack_store import delete_all


def purge_workspaces(conn: Connection, tenant_id: str) -> dict[str, int]:
    """Delete a tenant's Slack links, its workspaces' tokens and its install links.

    Teams link codes share the nonce table; ``installs.teams_links.purge_teams`` counts
    and deletes those.
    """
    keys = conn.execute(select(slack_links.c.enterprise_id, slack_links.c.team_id)
                        .where(slack_links.c.tenant_id == tenant_id)).all()
    for enterprise_id, team_id in keys:
        delete_all(conn, enterprise_id or None, team_id or None)
    conn.execute(delete(slack_links).where(slack_links.c.tenant_id == tenant_id))
    nonces = conn.execute(delete(install_link_nonces).where(
        install_link_nonces.c.tenant_id == tenant_id,
        install_link_nonces.c.purpose == INSTALL_LINK.tag,
    )).rowcount
    return {"slack_workspaces": len(keys), "install_links": int(nonces)}
