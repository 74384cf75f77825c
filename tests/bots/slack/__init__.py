"""Tests of the Slack transport."""
