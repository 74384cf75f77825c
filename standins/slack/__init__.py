"""Slack played locally: its Web API (``api``) and its side of the HTTP exchange (``driver``)."""
