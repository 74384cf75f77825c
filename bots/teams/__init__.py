"""Microsoft Teams: the second transport, on the Microsoft 365 Agents SDK."""
