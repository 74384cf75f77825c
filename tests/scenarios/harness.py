"""The scenario tests drive the app through ``standins.slack.driver``; these are its names."""

from __future__ import annotations

from standins.slack.driver import (
    CLIENT_ID,
    CLIENT_SECRET,
    PUBLIC_URL,
    Scenario,
    audit_events,
    open_scenario,
    runs_of,
    thread,
    today,
)
from standins.slack.requests import APP_ID, FORM, JSON, SIGNING_SECRET, Sent, Workspace

__all__ = [
    "APP_ID", "CLIENT_ID", "CLIENT_SECRET", "FORM", "JSON", "PUBLIC_URL", "SIGNING_SECRET",
    "Scenario", "Sent", "Workspace", "audit_events", "open_scenario", "runs_of", "thread",
    "today",
]
