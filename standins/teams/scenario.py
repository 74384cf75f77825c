"""Teams beside Slack in one scenario: the real app's Teams transport, Microsoft played locally.

``standins.slack.driver.open_scenario(settings, teams=True)`` starts a token issuer and a
Bot Connector on loopback and configures the app's Teams transport against them (its
three local-use settings); ``Scenario.teams`` is this ``TeamsSide``::

    async with open_scenario(settings, teams=True) as s:
        await s.tenant("acme")
        org = await s.teams.link(ENTRA_ACME, "acme", admin=ALICE)
        chat = personal_chat(ENTRA_ACME)
        await s.teams.send(s.teams.activities.message(chat, ALICE, "hello"))
        await s.idle()
        s.teams.connector.messages(chat.id)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from bots.runtime import Runtime
from bots.teams.settings import TeamsSettings
from core.authz import grant as grant_role
from installs.teams_links import TeamsLink, issue_link_code, redeem_link_code
from standins.teams.activities import Activities, JsonDict, TeamsUser
from standins.teams.connector import BotConnector
from standins.teams.driver import Delivered, TeamsDriver
from standins.teams.issuer import TokenIssuer

APP_ID = "6f1c1e2a-93b5-4c3e-8d1e-5a0b7c9d2e11"
"""The bot's Microsoft App ID in every scenario."""
APP_TENANT = "0d5c6a43-7a3e-4b0f-9c55-3f1e2d7a8b90"
"""The Entra tenant of the bot's own app registration."""
APP_PASSWORD = "standin-teams-secret"  # noqa: S105  # the stand-in's


def teams_settings(issuer: TokenIssuer, connector: BotConnector) -> TeamsSettings:
    """Teams settings for an app that trusts ``issuer`` and replies to ``connector``."""
    host = connector.service_url.split("://", 1)[1].split("/", 1)[0]
    return TeamsSettings(app_id=APP_ID, app_password=SecretStr(APP_PASSWORD),
                         app_tenant_id=APP_TENANT, jwks_url=issuer.jwks_url,
                         token_url=issuer.token_url, connector_hosts=[host])


@dataclass
class TeamsSide:
    """Microsoft's side of a scenario, and the app's messaging endpoint."""

    issuer: TokenIssuer
    connector: BotConnector
    driver: TeamsDriver
    settings: TeamsSettings
    url: str = ""
    runtime: Runtime | None = None

    @property
    def activities(self) -> Activities:
        """Builds activities as Teams sends them to this app."""
        return Activities(APP_ID, self.connector.service_url)

    @property
    def endpoint(self) -> str:
        """The app's ``/api/messages``."""
        return f"{self.url}/api/messages"

    async def send(self, activity: JsonDict, *, authorization: str | None = None) -> Delivered:
        """POST ``activity`` as the channel does (a fresh channel token unless given)."""
        return await self.driver.send(self.endpoint, activity, authorization=authorization)

    async def link(self, entra_tenant_id: str, tenant_id: str, *,
                   admin: TeamsUser | None = None) -> TeamsLink:
        """Link an organisation to a tenant as ``link CODE`` would (``admin`` made admin)."""
        assert self.runtime is not None
        rt = self.runtime
        by = "teams:operator"
        if admin is not None:
            by = f"teams:{entra_tenant_id}:{admin.aad_object_id}"
            await rt.db.run(grant_role, tenant_id, by, "admin")
        code = await rt.db.run(issue_link_code, rt.keyring, tenant_id, timedelta(hours=1))
        linked: TeamsLink = await rt.db.run(redeem_link_code, rt.audit, rt.keyring, code,
                                            entra_tenant_id, by)
        return linked

    def texts(self, conversation_id: str) -> list[str]:
        """The texts a person sees in a conversation, oldest first."""
        return [m.text or "" for m in self.connector.messages(conversation_id)]

    def cards(self, conversation_id: str) -> list[dict[str, Any]]:
        """The Adaptive Cards a person sees in a conversation, oldest first."""
        return [card for m in self.connector.messages(conversation_id) for card in m.cards]
