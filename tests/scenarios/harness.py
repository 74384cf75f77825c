"""The scenario tests drive the app through ``standins.slack.driver``; these are its names,
and the few readings of its state that only the tests need."""

from __future__ import annotations

from datetime import UTC, datetime

from core.audit.events import AuditEvent
from standins.slack.api import SlackMessage, SlackStandIn
from standins.slack.driver import (
    CLIENT_ID,
    CLIENT_SECRET,
    PUBLIC_URL,
    Scenario,
    open_scenario,
    open_teams_side,
    runs_of,
)
from standins.slack.requests import APP_ID, FORM, JSON, SIGNING_SECRET, Sent, Workspace

__all__ = [
    "APP_ID", "CLIENT_ID", "CLIENT_SECRET", "FORM", "JSON", "PUBLIC_URL", "SIGNING_SECRET",
    "Scenario", "Sent", "Workspace", "audit_events", "open_scenario", "open_teams_side",
    "runs_of", "thread",
    "today",
]


def today() -> str:
    """The billing period of a UTC tenant now (``YYYY-MM``)."""
    return datetime.now(UTC).strftime("%Y-%m")


def thread(slack: SlackStandIn, channel: str, thread_ts: str) -> list[SlackMessage]:
    """The app's replies in one thread, oldest first (the root left out)."""
    return [m for m in slack.messages(channel) if m.thread_ts == thread_ts and m.ts != thread_ts]


async def audit_events(scenario: Scenario, tenant_id: str, *names: str) -> list[AuditEvent]:
    """The tenant's audit events of the given types, oldest first."""
    found = await scenario.runtime.audit.recent(tenant_id, 500, events=names or None)
    return list(reversed(found))
