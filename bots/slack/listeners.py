"""What Tenantry does with each kind of Slack request: acknowledge, and hand the work on.

Each listener is a plain function that Bolt calls with the arguments it names, injected
by Bolt; ``transport`` is the deployment's ``SlackTransport``, which ``bots.slack.app``
puts into every request's Bolt context. A listener turns the raw payload into typed
values (a request whose ids are unusable is acknowledged and ignored), acknowledges, and
submits the work to the executor: nothing slow runs before the acknowledgement.

The installation comes from Bolt's authorisation (``authorizations[0]``, the command's
or action's team), never from the channel or the user's own team: a Slack Connect
channel carries users of other workspaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bots.slack import render
from bots.slack.answer import Origin, Request, SlackAnswers, Surface
from bots.slack.authorize import StoredBotAuthorize
from bots.slack.records import first_delivery
from core.audit.events import WORKSPACE_UNLINKED
from core.logs import log
from installs.links import resolve
from installs.oauth import uninstall

MALFORMED = (AttributeError, KeyError, IndexError, TypeError, ValueError)
"""What Bolt's payload handling raises on a signed body that is not the shape Slack sends
(``json.JSONDecodeError`` is a ``ValueError``): answered 400, where anything else (a
database that is down while authorising) stays a 500, which Slack retries."""

_MENTION = re.compile(r"<@[A-Z0-9]+>")
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass(frozen=True, slots=True)
class SlackTransport:
    """The Slack transport of one deployment: Bolt, and the parts its listeners use."""

    bolt: AsyncApp
    answers: SlackAnswers
    authorize: StoredBotAuthorize


def slack_id(value: object) -> str | None:
    """A Slack id from a raw payload field, or ``None`` if it is absent or not an id."""
    return value if isinstance(value, str) and _ID.match(value) else None


def malformed_ids(context: AsyncBoltContext) -> bool:
    """Whether a payload's workspace or user ids are not Slack ids.

    Authorisation looks the installation up by these ids; a number or an object there
    is no Slack payload, and would otherwise reach the database as a query parameter.
    """
    ids = (context.enterprise_id, context.team_id, context.user_id)
    return any(value is not None and slack_id(value) is None for value in ids)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _origin(context: AsyncBoltContext, user_id: object, user_team: object) -> Origin | None:
    """Who sent a request, through which installation; ``None`` if the ids are unusable."""
    org = bool(context.is_enterprise_install)
    enterprise = slack_id(context.enterprise_id)
    team = None if org else slack_id(context.team_id)
    user = slack_id(user_id)
    acting_team = ((slack_id(user_team) or slack_id(context.team_id) or enterprise) if org
                   else team)
    if user is None or acting_team is None or (team is None and enterprise is None):
        return None
    return Origin(enterprise_id=enterprise, team_id=team, is_enterprise_install=org,
                  user_team=acting_team, user_id=user)


def _request(surface: Surface, context: AsyncBoltContext, user: object, user_team: object,
             prompt: str, channel: object, thread_ts: object,
             event_id: object) -> Request | None:
    origin = _origin(context, user, user_team)
    if origin is None or slack_id(channel) is None or not (isinstance(event_id, str)
                                                           and event_id):
        log.info("slack request without usable ids ignored", surface=surface)
        return None
    return Request(origin=origin, surface=surface, channel=str(channel),
                   thread_ts=thread_ts if isinstance(thread_ts, str) else None,
                   event_id=event_id, prompt=prompt)


def _event_team(event: dict[str, Any], body: dict[str, Any]) -> object:
    return event.get("user_team") or event.get("team") or body.get("team_id")


async def on_command(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext,
                     transport: SlackTransport) -> None:
    """The slash command: a visible question, answered in its thread."""
    prompt = str(command.get("text") or "").strip()
    if not prompt:
        await ack(render.ask_hint(transport.answers.command))
        return
    trigger = command.get("trigger_id")
    made = _request("command", context, command.get("user_id"), command.get("team_id"), prompt,
                    command.get("channel_id"), None,
                    f"command:{trigger}" if isinstance(trigger, str) and trigger else None)
    if made is None:
        await ack(render.refusal("unreadable"))
        return
    # The link is read before the acknowledgement, so "On it" is never said for a
    # workspace that will not be answered; the job still audits the refusal.
    link = await transport.answers.link(made.origin)
    if link is None or not link.active:
        await ack(render.refusal("not_linked" if link is None else "link_revoked"))
        transport.answers.submit(replace(made, told=True))
        return
    await ack(render.ACK_WORKING)
    transport.answers.submit(made)


async def on_mention(ack: AsyncAck, event: dict[str, Any], body: dict[str, Any],
                     context: AsyncBoltContext, transport: SlackTransport) -> None:
    """A mention in a channel, answered in its thread."""
    await ack()
    prompt = _MENTION.sub("", str(event.get("text") or "")).strip()
    made = _request("mention", context, event.get("user"), _event_team(event, body), prompt,
                    event.get("channel"), event.get("thread_ts") or event.get("ts"),
                    body.get("event_id"))
    if made is not None:
        transport.answers.submit(made)


async def on_message(ack: AsyncAck, event: dict[str, Any], body: dict[str, Any],
                     context: AsyncBoltContext, transport: SlackTransport) -> None:
    """A direct message written by a person; every other message is ignored."""
    await ack()
    if (event.get("channel_type") != "im" or event.get("subtype")
            or event.get("bot_id") or not isinstance(event.get("text"), str)):
        return
    made = _request("dm", context, event.get("user"), _event_team(event, body),
                    str(event["text"]).strip(), event.get("channel"), event.get("thread_ts"),
                    body.get("event_id"))
    if made is not None:
        transport.answers.submit(made)


async def on_resume(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                    context: AsyncBoltContext, transport: SlackTransport) -> None:
    """The Resume button of a halted run."""
    await ack()
    user = _dict(body.get("user"))
    origin = _origin(context, user.get("id"), user.get("team_id"))
    run_id = action.get("value")
    channel = slack_id(_dict(body.get("channel")).get("id")
                       or _dict(body.get("container")).get("channel_id"))
    if origin is None or not isinstance(run_id, str) or not run_id or channel is None:
        return
    answers = transport.answers
    answers.executor.submit(f"resume:{run_id}", lambda: answers.resume(origin, run_id, channel))


async def on_home(ack: AsyncAck, event: dict[str, Any], body: dict[str, Any],
                  context: AsyncBoltContext, transport: SlackTransport) -> None:
    """The App Home tab opened: publish the person's view of their tenant."""
    await ack()
    if event.get("tab") != "home":
        return
    origin = _origin(context, event.get("user"), body.get("team_id") or context.team_id)
    event_id = body.get("event_id")
    if origin is None or not isinstance(event_id, str):
        return
    answers = transport.answers
    answers.executor.submit(f"home:{origin.key}:{event_id}", lambda: answers.home(origin))


async def on_verify(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext,
                    transport: SlackTransport) -> None:
    """The App Home's Verify button: an admin's check of the tenant's audit log."""
    await ack()
    user = _dict(body.get("user"))
    origin = _origin(context, user.get("id"), user.get("team_id"))
    if origin is not None:
        answers = transport.answers
        answers.executor.submit(f"verify:{origin.principal}",
                                lambda: answers.home(origin, verify=True))


async def on_digest(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                    context: AsyncBoltContext, transport: SlackTransport) -> None:
    """A digest's Pause or Resume button in the App Home: an admin's, checked there."""
    await ack()
    user = _dict(body.get("user"))
    origin = _origin(context, user.get("id"), user.get("team_id"))
    digest_id = action.get("value")
    if origin is None or not isinstance(digest_id, str) or not digest_id:
        return
    answers = transport.answers
    answers.executor.submit(f"digest-toggle:{origin.principal}:{digest_id}",
                            lambda: answers.toggle_digest(origin, digest_id))


async def on_uninstalled(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext,
                         transport: SlackTransport) -> None:
    """The app was removed from a workspace (or an org)."""
    await ack()
    _submit_forget(transport, context, body, "app_uninstalled", [])


async def on_revoked(ack: AsyncAck, body: dict[str, Any], event: dict[str, Any],
                     context: AsyncBoltContext, transport: SlackTransport) -> None:
    """The bot's token was revoked (as an uninstall), or some people's user tokens."""
    await ack()
    tokens = _dict(event.get("tokens"))
    bots, users = tokens.get("bot"), tokens.get("oauth")
    if isinstance(bots, list) and bots:
        _submit_forget(transport, context, body, "tokens_revoked", [])
    elif isinstance(users, list) and users:
        _submit_forget(transport, context, body, "user_tokens_revoked",
                       [u for u in users if slack_id(u)])


async def on_other_event(ack: AsyncAck) -> None:
    """Any other event the app is subscribed to: acknowledged, nothing else."""
    await ack()


async def on_error(error: Exception) -> BoltResponse:
    """A payload of the wrong shape is a 400; anything else a 500, which Slack retries."""
    if isinstance(error, MALFORMED):
        log.warning("malformed slack payload", error=f"{type(error).__name__}: {error}"[:200])
        return BoltResponse(status=400, body="request body is not a Slack payload")
    log.error("slack request failed", error=repr(error)[:200], exc_info=error)
    return BoltResponse(status=500, body="")


def _submit_forget(transport: SlackTransport, context: AsyncBoltContext,
                   body: dict[str, Any], why: str, users: list[str]) -> None:
    org = bool(context.is_enterprise_install)
    enterprise = slack_id(context.enterprise_id)
    team = None if org else slack_id(context.team_id)
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not (enterprise or team):
        return

    async def job() -> None:
        await _forget(transport, enterprise, team, org, event_id, why, users)

    # Forgetting is short and must happen even if shutdown comes first: its own park.
    transport.answers.executor.submit(f"slack:{enterprise or team}:{event_id}", job,
                                      park=job)


async def _forget(transport: SlackTransport, enterprise: str | None, team: str | None,
                  org: bool, event_id: str, why: str, users: list[str]) -> None:
    """Delete the tokens Slack revoked; an uninstall also revokes the link, audited."""
    runtime = transport.answers.runtime
    if not await runtime.db.run(first_delivery, event_id, enterprise or team or "-"):
        return
    if why == "user_tokens_revoked":
        for user in users:
            await transport.answers.clients.store.async_delete_installation(
                enterprise_id=enterprise, team_id=team, user_id=user)
        log.info("slack user tokens forgotten", team_id=team, count=len(users))
        return
    before = await runtime.db.run(resolve, enterprise, team, org)
    was_linked = (before is not None and before.active and before.team_id == team
                  and before.enterprise_id == enterprise)
    link = await runtime.db.run(uninstall, enterprise, team, org)
    transport.authorize.forget(enterprise, team)
    if link is not None and was_linked:
        await runtime.audit.record(link.tenant_id, WORKSPACE_UNLINKED, {
            "team_id": team, "enterprise_id": enterprise, "reason": why,
        })
    log.info("slack installation removed", team_id=team, enterprise_id=enterprise,
             reason=why, tenant_id=None if link is None else link.tenant_id)


def register(bolt: AsyncApp, command: str) -> None:
    """Route each kind of request to its listener, and errors to ``on_error``."""
    bolt.command(command)(on_command)
    bolt.event("app_mention")(on_mention)
    bolt.event("message")(on_message)
    bolt.action(render.RESUME_ACTION)(on_resume)
    bolt.event("app_home_opened")(on_home)
    bolt.action(render.VERIFY_ACTION)(on_verify)
    bolt.action(render.DIGEST_ACTION)(on_digest)
    bolt.event("app_uninstalled")(on_uninstalled)
    bolt.event("tokens_revoked")(on_revoked)
    bolt.event(re.compile(".*"))(on_other_event)
    bolt.error(on_error)
