"""The Slack App Home: the tenant's month against its allowance, and its audit trail.

Everyone sees the tenant's month-to-date usage and their own recent requests; a
tenant admin also sees who spent what, recent refusals and halts, the latest signed
audit checkpoint and a Verify button, and the tenant's scheduled digests, each with a
Pause or Resume button. The figures come from ``bots.standing``, which
reads them for one tenant and one person only; this module lays them out in Block
Kit. Wording specific to the Home tab lives here as constants; wording every
transport shares comes from ``bots.wording`` and the action ids from ``render``.
Slack rejects a view over 100 blocks or a section over 3000 characters, so every
view is fitted to those limits before it is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bots import wording
from bots.runtime import Runtime
from bots.slack import render
from bots.standing import AdminStanding, Allowance, Incident, RecentRun, tenant_standing
from core.audit import events
from core.audit.verify import VerifyReport
from core.digests.destinations import SlackDestination
from core.digests.records import Digest, list_digests
from core.prices import format_microcents

Block = dict[str, Any]

MAX_BLOCKS = 100
MAX_TEXT = 3000
MAX_HEADER = 150
PROMPT_CHARS = wording.PROMPT_CHARS

TITLE = "Tenantry · {tenant}"
PERIOD = "Plan `{plan}` · billing month {period} ({zone})"
SUSPENDED = f":warning: {wording.SUSPENDED}"
USAGE_HEADING = f"*{wording.USAGE_HEADING}*"
USAGE_LINE = "*{what}* {gauge} · {used} of {allowance}"
RUNS_HEADING = f"*{wording.RUNS_HEADING}*"
NO_RUNS = "You haven't asked anything yet. Mention @Tenantry or send it a direct message."
PRINCIPALS_HEADING = f"*{wording.PRINCIPALS_HEADING}*"
NO_PRINCIPALS = wording.NO_PRINCIPALS
MORE_PRINCIPALS = f"_{wording.MORE_PRINCIPALS}_"
INCIDENTS_HEADING = f"*{wording.INCIDENTS_HEADING}*"
NO_INCIDENTS = wording.NO_INCIDENTS
AUDIT_HEADING = f"*{wording.AUDIT_HEADING}*"
CHECKPOINT = "Latest signed checkpoint: {size:,} events · root `{root}` · signed {time}"
NO_CHECKPOINT = wording.NO_CHECKPOINT
VERIFY_BUTTON = wording.VERIFY_BUTTON
VERIFIED = (":white_check_mark: *Audit log verified:* {size:,} events, {checkpoints} checked, "
            "root `{root}`.")
NOT_VERIFIED = ":rotating_light: *Audit log does not verify*{where}: {reason}"
FROM_EVENT = " from event {seq}"
CHECKED_AT = "Checked {time}"
LEFT_OUT = "Some entries were left out to fit Slack's limits."
DIGESTS_HEADING = "*Scheduled digests*"
NO_DIGESTS = "No digests. An operator adds them with `tenantry digests add`."
DIGEST_LINE = "{mark} *{name}* · `{cron}` ({zone}) · {where} · last {last}"
DIGEST_PAUSED = " · paused ({reason})"
DIGEST_MARKS = {"active": ":arrow_forward:", "paused": ":double_vertical_bar:"}
PAUSE_BUTTON = "Pause"
RESUME_BUTTON = "Resume"
PAUSED_REASONS = {"operator": "by an operator", "admin": "by an admin",
                  "tenant_suspended": "account suspended",
                  "destination_revoked": "its destination is gone"}

IN_PROGRESS = f":hourglass_flowing_sand: {wording.IN_PROGRESS}"
OUTCOME_MARKS = {"completed": ":white_check_mark:", "refused": ":no_entry:",
                 "halted": ":pause_button:", "failed": ":x:"}
OUTCOMES = {status: f"{OUTCOME_MARKS[status]} {label}"
            for status, label in wording.OUTCOMES.items()}
INCIDENT_MARKS = {events.TOOL_REFUSED: ":no_entry:", events.RUN_REFUSED: ":no_entry_sign:",
                  events.RUN_HALTED: ":pause_button:"}
INCIDENTS = {event: f"{INCIDENT_MARKS[event]} {label}"
             for event, label in wording.INCIDENTS.items()}


def _escape(text: str) -> str:
    """Slack mrkdwn reads ``<``, ``>`` and ``&`` as markup; stored text must not be."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: object) -> str:
    return "`" + _escape(str(text).replace("`", "'")) + "`"


def _when(moment: datetime) -> str:
    """A time each viewer's Slack shows in their own zone, with a UTC fallback."""
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def gauge(used: int, allowance: int) -> str:
    """A ten-cell bar and a whole percentage, rounded down so 100% means spent."""
    bar, label = wording.gauge(used, allowance)
    return f"`{bar}` {_escape(label)}"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": wording.clip(text, MAX_TEXT)}}


def _context(text: str) -> Block:
    return {"type": "context",
            "elements": [{"type": "mrkdwn", "text": wording.clip(text, MAX_TEXT)}]}


def _sections(heading: str, lines: Sequence[str], empty: str) -> list[Block]:
    """A heading and its lines, over as many sections as Slack's 3000 characters need."""
    blocks: list[Block] = []
    text = heading
    for line in lines or [empty]:
        line = wording.clip(line, MAX_TEXT - 1)
        if len(text) + 1 + len(line) > MAX_TEXT:
            blocks.append(_section(text))
            text = line
        else:
            text = f"{text}\n{line}"
    return [*blocks, _section(text)]


def fit(body: Sequence[Block], tail: Sequence[Block] = ()) -> list[Block]:
    """At most ``MAX_BLOCKS`` blocks, cutting the body so that the tail stays whole.

    The tail is what the person just asked for (a verification result), so it is
    the last thing to lose; the cut is marked, never silent.
    """
    tail = list(tail)[: MAX_BLOCKS - 1]
    room = MAX_BLOCKS - len(tail)
    if len(body) <= room:
        return [*body, *tail]
    return [*body[: room - 1], _context(LEFT_OUT), *tail]


def _usage(usage: Sequence[Allowance]) -> list[Block]:
    lines = [USAGE_LINE.format(what=wording.ALLOWANCES[figure.name],
                               gauge=gauge(figure.used, figure.allowance),
                               used=wording.amount(figure.name, figure.used),
                               allowance=wording.amount(figure.name, figure.allowance))
             for figure in usage]
    return _sections(USAGE_HEADING, lines, "")


def _run_line(run: RecentRun) -> str:
    prompt = _escape(wording.excerpt(run.prompt, PROMPT_CHARS))
    return (f"{OUTCOMES.get(run.status, IN_PROGRESS)} · "
            f"{format_microcents(run.cost_microcents)} · {_when(run.created_at)} · “{prompt}”")


def _incident_line(incident: Incident) -> str:
    reason = wording.INCIDENT_REASONS.get(incident.reason, incident.reason)
    if incident.event == events.RUN_HALTED:
        what = _escape(wording.reached(incident.ceiling, incident.limit, incident.used).described)
    elif incident.event == events.TOOL_REFUSED:
        what = f"*{_escape(incident.capability)}*: {_escape(reason)}"
    else:
        what = _escape(reason)
    who = incident.principal_id or wording.UNKNOWN_PRINCIPAL
    return f"{INCIDENTS[incident.event]} · {_code(who)} · {what} · {_when(incident.time)}"


def _admin(admin: AdminStanding, digests: Sequence[Block]) -> list[Block]:
    """The admin's sections; the audit section and its button last, so that a
    verification result shows right below them."""
    checkpoint = admin.checkpoint
    signed = NO_CHECKPOINT if checkpoint is None else CHECKPOINT.format(
        size=checkpoint.size, root=checkpoint.root[:wording.ROOT_CHARS] + "…",
        time=_when(checkpoint.signed_at))
    shares = [f"{_code(share.principal_id)} · " + wording.share_figures(
                  share.runs, share.tokens, share.cost_microcents, share.tool_calls)
              for share in admin.shares]
    if admin.more_shares:
        shares.append(MORE_PRINCIPALS.format(count=len(admin.shares)))
    # The button carries no tenant: the handler takes it from the authorised installation.
    button = {"type": "button", "action_id": render.VERIFY_ACTION, "value": "verify",
              "text": {"type": "plain_text", "text": VERIFY_BUTTON}}
    return [
        {"type": "divider"},
        *_sections(PRINCIPALS_HEADING, shares, NO_PRINCIPALS),
        {"type": "divider"},
        *_sections(INCIDENTS_HEADING, [_incident_line(i) for i in admin.incidents],
                   NO_INCIDENTS),
        *digests,
        {"type": "divider"},
        _section(f"{AUDIT_HEADING}\n{signed}"),
        {"type": "actions", "block_id": "tenantry_audit", "elements": [button]},
    ]


def _digest_where(digest: Digest) -> str:
    destination = digest.destination
    if isinstance(destination, SlackDestination):
        return f"<#{destination.channel}>"
    return "a Teams conversation"


def digest_blocks(found: Sequence[Digest], zone: str) -> list[Block]:
    """The tenant's digests for its admins, each with a Pause or Resume button.

    A button carries the digest's id only: the handler takes the tenant from the
    authorised installation and checks the presser is an admin, as for Verify.
    """
    blocks: list[Block] = [{"type": "divider"}, _section(DIGESTS_HEADING)]
    if not found:
        return [*blocks, _context(NO_DIGESTS)]
    for digest in found:
        last = "never" if digest.last_fired_at is None else _when(digest.last_fired_at)
        text = DIGEST_LINE.format(mark=DIGEST_MARKS[digest.status], name=_escape(digest.name),
                                  cron=_escape(digest.cron), zone=_escape(zone),
                                  where=_digest_where(digest), last=last)
        if not digest.active:
            text += DIGEST_PAUSED.format(reason=_escape(PAUSED_REASONS.get(
                digest.paused_reason or "", digest.paused_reason or "")))
        label = PAUSE_BUTTON if digest.active else RESUME_BUTTON
        block = _section(text)
        block["accessory"] = {"type": "button", "action_id": render.DIGEST_ACTION,
                              "value": digest.id,
                              "text": {"type": "plain_text", "text": label}}
        blocks.append(block)
    return blocks


async def home_view(runtime: Runtime, *, tenant_id: str, principal_id: str, is_admin: bool,
                    extra: Sequence[Block] = ()) -> dict[str, Any]:
    """The Home tab of one person of one tenant, as a Block Kit ``home`` view.

    Args:
        tenant_id: The tenant resolved from the workspace's link, never from a payload.
        principal_id: Whose "recent requests" to show (``slack_principal(team, user)``).
        is_admin: Whether to add the admin sections; decide it as resuming does, from
            the Slack roles and the tenant's granted roles (``owner`` or ``admin``).
        extra: Blocks to show at the bottom and keep whole (a verification result).

    Raises:
        NotFound: No such tenant, or its plan is gone.
    """
    held = await tenant_standing(runtime, tenant_id=tenant_id, principal_id=principal_id,
                                 is_admin=is_admin)
    title = wording.clip(TITLE.format(tenant=held.tenant_name), MAX_HEADER)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True, "text": title}},
        _context(PERIOD.format(plan=_escape(held.plan_id), period=held.period,
                               zone=held.time_zone)),
    ]
    if held.suspended:
        blocks.append(_section(SUSPENDED))
    blocks += [*_usage(held.usage), {"type": "divider"},
               *_sections(RUNS_HEADING, [_run_line(run) for run in held.recent], NO_RUNS)]
    if held.admin is not None:
        found = await runtime.db.run(list_digests, tenant_id)
        blocks += _admin(held.admin, digest_blocks(found, held.time_zone))
    return {"type": "home", "blocks": fit(blocks, extra)}


def verify_blocks(report: VerifyReport) -> list[Block]:
    """How a verification reads: ok with its figures, or where the log stops holding."""
    if report.ok:
        text = VERIFIED.format(size=report.size,
                               checkpoints=wording.count(report.checkpoints_checked,
                                                         "signed checkpoint"),
                               root=report.root[:wording.ROOT_CHARS] + "…")
    else:
        where = "" if report.first_bad_seq is None else FROM_EVENT.format(seq=report.first_bad_seq)
        text = NOT_VERIFIED.format(where=where, reason=_escape(report.reason or "unknown"))
    return [_section(text), _context(CHECKED_AT.format(time=_when(datetime.now(UTC))))]


async def verify_view_section(runtime: Runtime, tenant_id: str) -> list[Block]:
    """Verify the tenant's whole audit log now and describe the result as blocks.

    It reads every event of the log, so call it from the executor, not before Slack's
    three-second acknowledgement.
    """
    return verify_blocks(await runtime.audit.verify(tenant_id))


async def publish_home(client: AsyncWebClient, runtime: Runtime, *, user_id: str,
                       tenant_id: str, principal_id: str, is_admin: bool,
                       extra: list[Block] | None = None) -> None:
    """Build the person's Home tab and publish it with ``views.publish``.

    Args:
        client: A client with the bot token of the installation the person acts in.
        user_id: The Slack user whose Home tab this is.
        extra: Passed to ``home_view``.

    Raises:
        SlackApiError: Slack refused the view; the caller decides whether that matters.
    """
    view = await home_view(runtime, tenant_id=tenant_id, principal_id=principal_id,
                           is_admin=is_admin, extra=extra or ())
    await client.views_publish(user_id=user_id, view=view)
