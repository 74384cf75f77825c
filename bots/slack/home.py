"""The Slack App Home: the tenant's month against its allowance, and its audit trail.

Everyone sees the tenant's month-to-date usage and their own recent requests; a
tenant admin also sees who spent what, recent refusals and halts, the latest signed
audit checkpoint and a Verify button. Every query is filtered by the tenant the
caller resolved from authentication, and "your requests" by the principal too, so a
view can only ever hold one tenant's data. Wording specific to the Home tab lives
here as constants; shared wording (the ceilings, the action ids) comes from
``render``. Slack rejects a view over 100 blocks or a section over 3000 characters,
so every view is fitted to those limits before it is published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from bots import wording
from bots.runtime import Runtime
from bots.slack import render
from core.audit import events
from core.audit.events import AuditEvent
from core.audit.verify import VerifyReport
from core.budget.ledger import standing
from core.db.engine import reads
from core.db.schema import runs, usage_ledger
from core.prices import format_microcents
from core.runs import RunRecord, recent_runs
from core.tenants import Plan

Block = dict[str, Any]

MAX_BLOCKS = 100
MAX_TEXT = 3000
MAX_HEADER = 150
RECENT_RUNS = 10
TOP_PRINCIPALS = 15
RECENT_INCIDENTS = 10
GAUGE_CELLS = 10
ROOT_CHARS = 12
PROMPT_CHARS = 80

TITLE = "Tenantry · {tenant}"
PERIOD = "Plan `{plan}` · billing month {period} ({zone})"
SUSPENDED = ":warning: This account is suspended: new requests are refused."
USAGE_HEADING = "*This month's usage*"
USAGE_LINE = "*{what}* {gauge} · {used} of {allowance}"
RUNS_HEADING = "*Your recent requests*"
NO_RUNS = "You haven't asked anything yet. Mention @Tenantry or send it a direct message."
PRINCIPALS_HEADING = "*Usage by person this month*"
PRINCIPAL_LINE = "{who} · {runs} · {tokens:,} tokens · {cost} · {calls}"
NO_PRINCIPALS = "Nobody has used the allowance this month."
MORE_PRINCIPALS = "_Only the top {count} by cost are shown._"
INCIDENTS_HEADING = "*Recent refusals and halts*"
NO_INCIDENTS = "No refusals or halts."
AUDIT_HEADING = "*Audit log*"
CHECKPOINT = "Latest signed checkpoint: {size:,} events · root `{root}` · signed {time}"
NO_CHECKPOINT = "No signed checkpoint yet; the log is still checked event by event."
VERIFY_BUTTON = "Verify audit log"
VERIFIED = (":white_check_mark: *Audit log verified:* {size:,} events, {checkpoints} checked, "
            "root `{root}`.")
NOT_VERIFIED = ":rotating_light: *Audit log does not verify*{where}: {reason}"
FROM_EVENT = " from event {seq}"
CHECKED_AT = "Checked {time}"
LEFT_OUT = "Some entries were left out to fit Slack's limits."

IN_PROGRESS = ":hourglass_flowing_sand: in progress"
OUTCOMES = {"completed": ":white_check_mark: answered", "refused": ":no_entry: refused",
            "halted": ":pause_button: halted", "failed": ":x: failed"}
INCIDENTS = {events.TOOL_REFUSED: ":no_entry: tool refused",
             events.RUN_REFUSED: ":no_entry_sign: request refused",
             events.RUN_HALTED: ":pause_button: request halted"}
REASONS = {"not_licensed": "not in the plan", "forbidden": "the person's role doesn't allow it",
           "not_resolved": "not available here", "not_in_scope": "not in the request's scope",
           "tenant_suspended": "account suspended", "allowance_exhausted":
           "monthly allowance used up", "not_linked": "workspace not linked",
           "link_revoked": "workspace link revoked"}


def _escape(text: str) -> str:
    """Slack mrkdwn reads ``<``, ``>`` and ``&`` as markup; stored text must not be."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _code(text: object) -> str:
    return "`" + _escape(str(text).replace("`", "'")) + "`"


def _when(moment: datetime | str) -> str:
    """A time each viewer's Slack shows in their own zone, with a UTC fallback."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # SQLite hands back naive UTC datetimes
        moment = moment.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def gauge(used: int, allowance: int) -> str:
    """A ten-cell bar and a whole percentage, rounded down so 100% means spent."""
    if allowance <= 0:
        return f"`{'░' * GAUGE_CELLS}` no allowance"
    filled = min(GAUGE_CELLS, used * GAUGE_CELLS // allowance)
    percent = used * 100 // allowance
    label = "&lt;1%" if used > 0 and percent == 0 else f"{percent}%"
    return f"`{'▓' * filled}{'░' * (GAUGE_CELLS - filled)}` {label}"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_TEXT)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text, MAX_TEXT)}]}


def _sections(heading: str, lines: Sequence[str], empty: str) -> list[Block]:
    """A heading and its lines, over as many sections as Slack's 3000 characters need."""
    blocks: list[Block] = []
    text = heading
    for line in lines or [empty]:
        line = _clip(line, MAX_TEXT - 1)
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


def _usage(plan: Plan, used: tuple[int, int, int]) -> list[Block]:
    tokens, cost, calls = used
    lines = [USAGE_LINE.format(what=what, gauge=gauge(amount, allowance), used=show(amount),
                               allowance=show(allowance))
             for what, amount, allowance, show in (
                 ("Tokens", tokens, plan.monthly_tokens, "{:,}".format),
                 ("Cost", cost, plan.monthly_cost_microcents, format_microcents),
                 ("Tool calls", calls, plan.monthly_tool_calls, "{:,}".format))]
    return _sections(USAGE_HEADING, lines, "")


def _run_line(run: RunRecord) -> str:
    prompt = _escape(_clip(" ".join(run.prompt.split()), PROMPT_CHARS))
    return (f"{OUTCOMES.get(run.status, IN_PROGRESS)} · "
            f"{format_microcents(run.cost_microcents)} · {_when(run.created_at)} · “{prompt}”")


@reads
def _by_principal(conn: Connection, tenant_id: str, period: str) -> list[str]:
    """Each principal's share of the month, from the same ledger rows the month sums.

    An open reservation counts at its reserved amount, as the month does, so the
    shares add up to the tenant's figures above them.
    """
    led = usage_ledger.c
    held = led.status == "reserved"
    spent = led.input_tokens + led.output_tokens + led.cache_read_tokens + led.cache_write_tokens
    cost = func.sum(case((held, led.reserved_cost_microcents), else_=led.cost_microcents))
    query = (
        select(runs.c.principal_id, func.count(func.distinct(runs.c.id)),
               func.sum(case((held, led.reserved_tokens), else_=spent)), cost,
               func.sum(case((held, led.reserved_tool_calls), else_=led.tool_calls)))
        .select_from(usage_ledger.join(
            runs, and_(runs.c.id == led.run_id, runs.c.tenant_id == led.tenant_id)))
        .where(led.tenant_id == tenant_id, led.period == period)
        .group_by(runs.c.principal_id)
        .order_by(cost.desc(), runs.c.principal_id)
        .limit(TOP_PRINCIPALS + 1)
    )
    rows = conn.execute(query).all()
    lines = [PRINCIPAL_LINE.format(who=_code(who), runs=_count(int(count), "request"),
                                   tokens=int(tokens or 0), cost=format_microcents(int(spend or 0)),
                                   calls=_count(int(calls or 0), "tool call"))
             for who, count, tokens, spend, calls in rows[:TOP_PRINCIPALS]]
    if len(rows) > TOP_PRINCIPALS:
        lines.append(MORE_PRINCIPALS.format(count=TOP_PRINCIPALS))
    return lines


def _incident_line(event: AuditEvent, owners: Mapping[str, str]) -> str:
    fields = event.fields
    who = fields.get("principal") or owners.get(event.run_id or "", "unknown")
    reason = str(fields.get("reason", ""))
    if event.event == events.RUN_HALTED:
        ceiling = str(fields.get("ceiling", ""))
        what = (f"{_escape(wording.CEILINGS.get(ceiling, ceiling))} (limit "
                f"{wording.amount(ceiling, fields.get('limit'))}, used "
                f"{wording.amount(ceiling, fields.get('used'))})")
    elif event.event == events.TOOL_REFUSED:
        what = f"*{_escape(str(fields.get('capability', '')))}*: {REASONS.get(reason, reason)}"
    else:
        what = _escape(REASONS.get(reason, reason))
    return f"{INCIDENTS[event.event]} · {_code(who)} · {what} · {_when(event.time)}"


async def _incidents(runtime: Runtime, tenant_id: str) -> list[str]:
    found = await runtime.audit.recent(tenant_id, RECENT_INCIDENTS, events=set(INCIDENTS))
    # A halt event names its run, not its principal: look the owners up, in this tenant.
    halted = {e.run_id for e in found if e.event == events.RUN_HALTED and e.run_id}
    owners = await runtime.db.run(_owners, tenant_id, sorted(halted)) if halted else {}
    return [_incident_line(event, owners) for event in found]


@reads
def _owners(conn: Connection, tenant_id: str, run_ids: list[str]) -> dict[str, str]:
    rows = conn.execute(select(runs.c.id, runs.c.principal_id).where(
        runs.c.tenant_id == tenant_id, runs.c.id.in_(run_ids)))
    return {str(run_id): str(who) for run_id, who in rows}


async def _admin(runtime: Runtime, tenant_id: str, period: str) -> list[Block]:
    checkpoint = await runtime.audit.latest_checkpoint(tenant_id)
    signed = NO_CHECKPOINT if checkpoint is None else CHECKPOINT.format(
        size=checkpoint.size, root=checkpoint.root[:ROOT_CHARS] + "…",
        time=_when(checkpoint.created_at))
    # The button carries no tenant: the handler takes it from the authorised installation.
    button = {"type": "button", "action_id": render.VERIFY_ACTION, "value": "verify",
              "text": {"type": "plain_text", "text": VERIFY_BUTTON}}
    return [
        {"type": "divider"},
        *_sections(PRINCIPALS_HEADING, await runtime.db.run(_by_principal, tenant_id, period),
                   NO_PRINCIPALS),
        {"type": "divider"},
        *_sections(INCIDENTS_HEADING, await _incidents(runtime, tenant_id), NO_INCIDENTS),
        {"type": "divider"},
        _section(f"{AUDIT_HEADING}\n{signed}"),
        {"type": "actions", "block_id": "tenantry_audit", "elements": [button]},
    ]


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
    held = await runtime.db.run(standing, tenant_id)
    tenant, plan, period, used = held.tenant, held.plan, held.period, held.used
    mine = await runtime.db.run(recent_runs, tenant.id, RECENT_RUNS,
                                principal_id=principal_id)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _clip(TITLE.format(tenant=tenant.name), MAX_HEADER)}},
        _context(PERIOD.format(plan=_escape(plan.id), period=period, zone=tenant.time_zone)),
    ]
    if tenant.status != "active":
        blocks.append(_section(SUSPENDED))
    blocks += [*_usage(plan, used), {"type": "divider"},
               *_sections(RUNS_HEADING, [_run_line(run) for run in mine], NO_RUNS)]
    if is_admin:
        blocks += await _admin(runtime, tenant.id, period)
    return {"type": "home", "blocks": fit(blocks, extra)}


def verify_blocks(report: VerifyReport) -> list[Block]:
    """How a verification reads: ok with its figures, or where the log stops holding."""
    if report.ok:
        text = VERIFIED.format(size=report.size,
                               checkpoints=_count(report.checkpoints_checked, "signed checkpoint"),
                               root=report.root[:ROOT_CHARS] + "…")
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
