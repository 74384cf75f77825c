"""The Slack transport: Bolt mounted in our aiohttp app, answering runs in threads."""
