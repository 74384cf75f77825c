"""What Tenantry does with each kind of Teams activity: read it, and hand the work on.

The Agents SDK's ``AgentApplication`` routes each activity to one of these handlers
after its JWT check. A handler turns the activity into typed values (an activity whose
ids are unusable is ignored) and submits the work to the executor; nothing slow runs
while Teams waits for the HTTP answer. The only exception is an Adaptive Card's
``Action.Execute``, which Teams expects to be answered with a card in the response:
it gets a small one at once, and the resumed run or the verification follows in the
executor.

The Entra tenant id arrives in the unsigned body (``conversation.tenantId``,
``channelData.tenant.id``); it is only a key to look an onboarding record up by, and
two that disagree make the activity unreadable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    ConversationReference,
)
from microsoft_agents.hosting.core import AgentApplication, TurnContext, TurnState

from bots.teams import render
from core.logs import log

Surface = Literal["personal", "groupChat", "channel"]
Command = Literal["ask", "link", "help", "budget", "audit"]

_GUID = re.compile(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")
_COMMAND = re.compile(r"^\s*(link|help|budget|audit)\b\s*(.*)$", re.IGNORECASE | re.DOTALL)
_MAX_ID = 512


@dataclass(frozen=True, slots=True)
class TeamsRequest:
    """One Teams message or card action, reduced to what Tenantry needs.

    Attributes:
        activity_id: Teams' id of the activity; a retry carries the same one.
        entra_tenant_id: The organisation it came from (lower-case GUID), unsigned:
            a key for the onboarding record, nothing more.
        aad_object_id: The sender's Entra object id (lower-case GUID).
        conversation_id: Teams' conversation id; a channel's includes the thread.
        surface: 1:1 chat, group chat or channel.
        command: What the text asks for (``ask`` for a question to the agent).
        text: The question, or the command's argument; mentions of the bot removed.
        reference: Where replies go (the SDK's ``ConversationReference`` as JSON).
    """

    activity_id: str
    entra_tenant_id: str
    aad_object_id: str
    conversation_id: str
    surface: Surface
    command: Command
    text: str
    reference: dict[str, Any]

    @property
    def principal(self) -> str:
        """``teams:<entra tenant id>:<aadObjectId>``: never taken from a name in the text."""
        return f"teams:{self.entra_tenant_id}:{self.aad_object_id}"

    @property
    def conversation_key(self) -> str:
        """The conversation as the agent's history knows it, scoped to the organisation."""
        return f"teams:{self.entra_tenant_id}:{self.conversation_id}"


def _guid(value: object) -> str | None:
    text = value.lower() if isinstance(value, str) else ""
    return text if _GUID.match(text) else None


def entra_tenant(activity: Activity) -> str | None:
    """The organisation's Entra tenant id, if the activity's two copies of it agree."""
    channel_data = activity.channel_data
    data = channel_data if isinstance(channel_data, dict) else {}
    tenant = data.get("tenant")
    ids = {_guid(activity.conversation.tenant_id) if activity.conversation else None,
           _guid(tenant.get("id")) if isinstance(tenant, dict) else None} - {None}
    return ids.pop() if len(ids) == 1 else None


def reference_of(activity: Activity) -> dict[str, Any]:
    """Where replies to ``activity`` go, as JSON to keep."""
    reference: ConversationReference = activity.get_conversation_reference()
    return reference.model_dump(mode="json", by_alias=True, exclude_none=True)


def read_request(activity: Activity) -> TeamsRequest | None:
    """The request an inbound activity makes; ``None`` if its ids are unusable."""
    conversation = activity.conversation
    sender = activity.from_property
    tenant = entra_tenant(activity)
    user = _guid(sender.aad_object_id) if sender else None
    kind = conversation.conversation_type if conversation else None
    if (tenant is None or user is None or conversation is None or not conversation.id
            or len(conversation.id) > _MAX_ID or not activity.id
            or len(activity.id) > _MAX_ID or not activity.service_url):
        log.info("teams activity without usable ids ignored", type=activity.type)
        return None
    surface: Surface = ("groupChat" if kind == "groupChat" else
                        "channel" if kind == "channel" else "personal")
    text = (activity.text or "").strip()
    matched = _COMMAND.match(text)
    command: Command = "ask"
    if matched:
        command = matched.group(1).lower()  # type: ignore[assignment]
        text = matched.group(2).strip()
    return TeamsRequest(activity_id=activity.id, entra_tenant_id=tenant, aad_object_id=user,
                        conversation_id=conversation.id, surface=surface, command=command,
                        text=text, reference=reference_of(activity))


def _run_id(data: object) -> str | None:
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return run_id if isinstance(run_id, str) and 0 < len(run_id) <= 64 else None


def register(app: AgentApplication[TurnState], transport: Any) -> None:
    """Route each kind of activity to its handler; ``transport`` is the ``TeamsAnswers``."""

    @app.activity(ActivityTypes.message)
    async def on_message(context: TurnContext, state: TurnState) -> None:
        request = read_request(context.activity)
        if request is not None:
            transport.submit(request)

    @app.installation_update()
    async def on_installation(context: TurnContext, state: TurnState) -> None:
        activity = context.activity
        tenant = entra_tenant(activity)
        action = str(activity.action or "")
        if tenant is None or not activity.id:
            log.info("teams installation update without a tenant ignored", action=action)
            return
        if action.startswith("add"):
            transport.installed(tenant, activity.id, reference_of(activity))
        elif action.startswith("remove") and activity.conversation:
            transport.uninstalled(tenant, activity.id, activity.conversation.id)

    @app.adaptive_card.action_execute(render.RESUME_VERB)
    async def on_resume(context: TurnContext, state: TurnState,
                        data: Any) -> AdaptiveCardInvokeResponse:
        request = read_request(context.activity)
        run_id = _run_id(data)
        if request is None or run_id is None:
            return card_response(render.invoke_reply(render.refusal("unreadable")))
        return card_response(await transport.resume_pressed(request, run_id))

    @app.adaptive_card.action_execute(render.VERIFY_VERB)
    async def on_verify(context: TurnContext, state: TurnState,
                        data: Any) -> AdaptiveCardInvokeResponse:
        request = read_request(context.activity)
        if request is None:
            return card_response(render.invoke_reply(render.refusal("unreadable")))
        return card_response(await transport.verify_pressed(request))

    def anything(context: TurnContext) -> bool:
        return True

    async def ignore(context: TurnContext, state: TurnState) -> None:
        """Any other activity: answered 200, nothing else (and its text not logged)."""

    app.add_route(anything, ignore)
    app.error(on_error)


def card_response(card: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    """An ``Action.Execute`` answer that replaces the pressed card with ``card``."""
    return AdaptiveCardInvokeResponse(
        status_code=200, type="application/vnd.microsoft.card.adaptive", value=card)


async def on_error(context: TurnContext, error: Exception) -> None:
    """A handler failed: logged without the activity's text; Teams gets its 200."""
    log.error("teams activity failed", type=context.activity.type,
              error=repr(error)[:200], exc_info=error)
