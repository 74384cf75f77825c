"""Requests from a workspace with no installation: answered at once, never a 500.

Bolt's own answer to such a slash command or button press posts its apology to the
request's ``response_url`` before acknowledging, so a slow or failing ``response_url``
turned into a late acknowledgement or a 500. ``apologise_unless_installed`` runs just
before Bolt's authorisation and answers those requests itself: a 200 whose body is the
apology (what Slack shows the sender of a slash command), and, for a button, whose
acknowledgement Slack does not show, the apology posted to ``response_url`` by the
executor once the acknowledgement is out; a failure there is logged, nothing more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bots.slack import render
from bots.slack.listeners import SlackTransport
from core.logs import log

Next = Callable[[], Awaitable[BoltResponse]]


async def apologise_unless_installed(req: AsyncBoltRequest, next: Next) -> BoltResponse:
    """Bolt's ``before_authorize``: requests that carry a ``response_url`` from a
    workspace without installation get the apology; everything else goes on."""
    context = req.context
    response_url = context.response_url
    if response_url is None:
        return await next()
    transport = context.get("transport")
    assert isinstance(transport, SlackTransport)
    found = await transport.authorize(context=context, enterprise_id=context.enterprise_id,
                                      team_id=context.team_id, user_id=context.user_id)
    if found is not None:
        return await next()
    log.info("slack request from a workspace without installation answered",
             team_id=context.team_id, enterprise_id=context.enterprise_id)
    apology = render.refusal("not_installed")
    if "command" in req.body:
        return BoltResponse(status=200, body=apology)
    respond = context.respond
    assert respond is not None

    async def tell() -> None:
        try:  # whatever response_url does, nobody waits on it
            await respond(apology, response_type="ephemeral", replace_original=False)
        except Exception as exc:
            log.info("slack apology not delivered", error=type(exc).__name__)

    transport.answers.executor.submit(f"apology:{response_url}", tell)
    return BoltResponse(status=200, body="")
