"""Teams' side of the inbound exchange: POST an activity to a bot, signed as the channel signs.

Each request carries ``Authorization: Bearer <channel token>``, a JWT the issuer signs
for the bot's app id with the activity's ``serviceUrl`` as its ``serviceurl`` claim, as
the Bot Framework channel does for every activity::

    async with TeamsDriver(issuer, APP_ID) as teams:
        status, body = await teams.send(f"{bot_url}/api/messages", activity)
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Self

import aiohttp

from standins.teams.activities import JsonDict
from standins.teams.issuer import TokenIssuer


class Delivered(NamedTuple):
    """The bot's answer: its HTTP status, and its body as JSON (None when empty, the text
    when not JSON)."""

    status: int
    body: Any


class TeamsDriver:
    """POSTs activities to a bot as the channel, for as long as ``async with`` lasts.

    Args:
        issuer: Signs the channel tokens.
        app_id: The bot's app id, the tokens' audience.
    """

    def __init__(self, issuer: TokenIssuer, app_id: str) -> None:
        self.issuer = issuer
        self.app_id = app_id
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    async def send(
        self, url: str, activity: JsonDict, *, authorization: str | None = None
    ) -> Delivered:
        """POST ``activity`` to the bot at ``url``.

        Args:
            url: The bot's messaging endpoint (``.../api/messages``).
            activity: The activity, as ``Activities`` builds it.
            authorization: The whole ``Authorization`` header to send instead of a fresh
                channel token (``""`` sends none), to try the bot's refusals.
        """
        if self._session is None:
            raise RuntimeError("TeamsDriver is not open; use `async with`")
        if authorization is None:
            token = self.issuer.channel_token(self.app_id, str(activity["serviceUrl"]))
            authorization = f"Bearer {token}"
        headers = {"Authorization": authorization} if authorization else {}
        async with self._session.post(url, json=activity, headers=headers) as response:
            text = await response.text()
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = text
        return Delivered(response.status, body)
