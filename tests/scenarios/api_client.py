"""Calling the HTTP API of a running scenario with a real key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.admin import Admin
from tests.scenarios.harness import Scenario


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


async def issue_key(scenario: Scenario, tenant_id: str, principal: str = "svc:backend",
                    **options: Any) -> str:
    """A new key of ``principal`` in ``tenant_id`` (created through the admin path)."""
    admin = Admin(scenario.db, scenario.runtime.audit, scenario.runtime.keyring, by="cli:ops")
    return (await admin.create_api_key(tenant_id, principal, **options)).secret


async def call(scenario: Scenario, method: str, path: str, key: str | None = None, *,
               json: Any = None, data: bytes | None = None,
               headers: dict[str, str] | None = None) -> Answer:
    """One request to the API; the body parsed as JSON where it is JSON."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    async with scenario.session.request(method, scenario.url + path, json=json, data=data,
                                        headers=sent) as response:
        text = await response.text()
        body: Any = text
        if "json" in response.content_type:
            body = await response.json(content_type=None)
        return Answer(response.status, dict(response.headers), body)
