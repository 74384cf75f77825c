"""The scenario tests drive the app through ``standins.slack.driver``; these are its names."""

from __future__ import annotations

from standins.slack.driver import (
    APP_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    FORM,
    JSON,
    PUBLIC_URL,
    SIGNING_SECRET,
    Scenario,
    Sent,
    Workspace,
    audit_events,
    open_scenario,
    runs_of,
    thread,
    today,
)

__all__ = [
    "APP_ID", "CLIENT_ID", "CLIENT_SECRET", "FORM", "JSON", "PUBLIC_URL", "SIGNING_SECRET",
    "Scenario", "Sent", "Workspace", "audit_events", "open_scenario", "runs_of", "thread",
    "today",
]
