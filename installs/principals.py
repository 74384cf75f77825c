"""Slack and Teams users as Tenantry principals, and the roles Slack vouches for.

A principal id names the workspace (for Teams, the Entra tenant) as well as the user,
so the same user id seen in two workspaces (Enterprise Grid shares user ids across an
org) never shares history or grants between them by accident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.errors import InvalidInput

_SLACK_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def slack_principal(team_id: str, user_id: str) -> str:
    """The principal id ``slack:<team>:<user>`` of a Slack user acting in a workspace.

    Raises:
        InvalidInput: an id is empty or not a Slack id; a ``:`` in one could make two
            different users share a principal.
    """
    for kind, value in (("team", team_id), ("user", user_id)):
        if not _SLACK_ID.match(value):
            raise InvalidInput(f"Slack {kind} id must be 1-32 letters or digits, got {value!r}")
    return f"slack:{team_id}:{user_id}"


def check_guid(kind: str, value: str) -> str:
    """``value``, lower-cased, if it is a GUID (``8-4-4-4-12`` hex digits, no braces).

    Entra ids arrive in either case; one spelling keeps one tenant one key.

    Raises:
        InvalidInput: ``value`` is not a GUID.
    """
    lowered = value.lower() if isinstance(value, str) else ""
    if not _GUID.fullmatch(lowered):
        raise InvalidInput(f"{kind} must be a GUID, got {value!r}")
    return lowered


def teams_principal(entra_tenant_id: str, aad_object_id: str) -> str:
    """The principal id ``teams:<Entra tenant>:<aadObjectId>`` of a Teams user.

    The Entra object id (``from.aadObjectId``), not the Teams-only ``from.id``: it is
    the user's identity across Microsoft 365, stable for the life of the account.

    Raises:
        InvalidInput: either id is not a GUID.
    """
    return (f"teams:{check_guid('Entra tenant id', entra_tenant_id)}"
            f":{check_guid('Entra object id', aad_object_id)}")


def roles_from_slack(user_info: Mapping[str, Any]) -> set[str]:
    """The roles a Slack user object (``users.info``'s ``user``) vouches for in its workspace.

    Owners (``is_owner``, ``is_primary_owner``) are ``owner``; admins are ``admin``
    (Slack also marks owners as admins, so an owner usually holds both); anyone else
    is ``member``. Guests (``is_restricted``, ``is_ultra_restricted``) are only ever
    ``guest``, whatever other flag they carry, and a deactivated user (``deleted``)
    holds no role: both must fail closed. Flags are true only when they are ``True``,
    so a malformed payload grants nothing beyond ``member``.
    """

    def flag(name: str) -> bool:
        return user_info.get(name) is True

    if flag("deleted"):
        return set()
    if flag("is_restricted") or flag("is_ultra_restricted"):
        return {"guest"}
    roles = set()
    if flag("is_owner") or flag("is_primary_owner"):
        roles.add("owner")
    if flag("is_admin"):
        roles.add("admin")
    return roles or {"member"}
