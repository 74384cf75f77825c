"""Every word Tenantry says in Microsoft Teams, and the Adaptive Cards it says it with.

One module, so wording is reviewed in one place and handlers never format text;
what Teams says the same as every other transport comes from ``bots.wording``, and
how a card is built from ``bots.teams.cards``. Messages are Teams Markdown, in which
Teams also reads HTML and ``<at>`` mention tags: text from a person or a model goes
through ``escape`` first. In a card, such text only ever goes into a ``literal``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bots import wording
from bots.standing import AdminStanding, Incident, RecentRun, Share, TenantStanding
from bots.teams import cards
from bots.teams.cards import Element
from core.agent import RunOutcome
from core.audit import events
from core.audit.verify import VerifyReport
from core.prices import format_microcents

RESUME_VERB = "tenantry.resume"
VERIFY_VERB = "tenantry.verify"

NAME_CHARS = 100
TITLE_CHARS = 150

LINK_STEPS = ("an admin of your Tenantry account gets a link code from the operator "
              "(`tenantry teams link-code`) and sends me `link` followed by the code in a "
              "1:1 chat")
NEW_CODE = "Ask the operator for a new one (`tenantry teams link-code`)."

REFUSALS = {
    "not_linked": (
        "This Microsoft Teams organization isn't linked to a Tenantry account, so I can't "
        f"answer here. To link it, {LINK_STEPS}."
    ),
    "link_revoked": (
        "This organization's link to its Tenantry account was removed when Tenantry was "
        "uninstalled, so I can't answer here. Reinstall the app, then link it again: "
        f"{LINK_STEPS}."
    ),
    **wording.REFUSALS,
}

LINK_FAILURES = {
    "bad_signature": ("This link code wasn't issued by this Tenantry deployment. Check that "
                      f"you sent all of it. {NEW_CODE}"),
    "expired": f"This link code has expired. {NEW_CODE}",
    "already_used": f"This link code was already used. {NEW_CODE}",
    "unknown_link": f"This link code isn't known here. {NEW_CODE}",
    "unknown_tenant": ("The Tenantry account this link code was made for no longer exists. "
                       "Ask the operator which account to link."),
    "tenant_suspended": ("The Tenantry account this link code was made for is suspended, so "
                         "nothing can be linked to it. Its owner can contact support to "
                         "restore it."),
    "not_admin": ("Only an owner or admin of the Tenantry account can link this "
                  "organization. Ask one of them to send me the link code."),
    "not_personal": ("Send the link code to me in a 1:1 chat, not in a group chat or a "
                     "channel: a link code must not be shown to others. If others may have "
                     "seen this one, ask the operator for a new one."),
    "conflict": ("This Microsoft Teams organization is already linked to another Tenantry "
                 "account. The operator must unlink it from that account before it can be "
                 "linked to this one."),
    "already_linked": ("This organization is already linked to this Tenantry account: there "
                       "is nothing more to do. Send `help` to see what I can do."),
}
"""Why ``link`` with a code did not link the organization, and who can fix it."""
LINK_FAILED = f"I couldn't link this organization with that code. {NEW_CODE}"

HELP = (
    "Ask me anything: mention me in a channel or a group chat, or write to me in a 1:1 "
    "chat. I answer with the tools your plan and your role allow.\n\n"
    "- `budget`: this month's usage against your plan's allowance, and your recent "
    "requests; admins also see usage by person, refusals and halts, and the audit log\n"
    "- `audit`: for admins, verify this account's audit log now\n"
    "- `link CODE`: link this Microsoft Teams organization to a Tenantry account (an admin "
    "of the account, in a 1:1 chat with me)\n"
    "- `help`: this message"
)
LINKED = ("✅ This Microsoft Teams organization is now linked to the Tenantry account "
          "**{tenant}**. Mention me in a channel or a chat, or write to me here, to ask "
          "something; send `help` to see what I can do.")
INSTALLED_PENDING = ("Thanks for adding Tenantry. This Microsoft Teams organization isn't "
                     "linked to a Tenantry account yet, so I won't answer here until it is. "
                     f"To link it, {LINK_STEPS}.")
ALREADY_RESUMED = "This request has already been resumed."
PRINCIPAL_LINE = ("To Tenantry you are `{principal}`: the operator can make you an admin with "
                  "`tenantry roles grant --tenant ACCOUNT {principal} admin`, after which "
                  "you can send the same code again.")
VERIFY_DENIED = "Only an owner or admin of the Tenantry account can verify its audit log."
VERIFY_STARTED = "🔎 Verifying the audit log; the result follows in this chat."

PAUSED_TITLE = "⏸️ Request paused"
LIMIT_REACHED, LIMIT, USED = "Limit reached", "Limit", "Used"
RESUME_BUTTON = "Resume"

TITLE = "Tenantry · {tenant}"
PERIOD = "Plan {plan} · billing month {period} ({zone})"
USAGE_VALUE = "{bar} {label} · {used} of {allowance}"
NO_RUNS = ("You haven't asked anything yet. Mention me in a channel or a chat, or write to "
           "me in a 1:1 chat.")
CHECKPOINT = "Latest signed checkpoint: {size:,} events · root {root} · signed {time}"
VERIFIED = "✅ **Audit log verified:** {size:,} events, {checkpoints} checked, root {root}."
NOT_VERIFIED = "🚨 **Audit log does not verify**{where}:"
FROM_EVENT = " from event {seq}"
UNKNOWN_REASON = "unknown"
CHECKED_AT = "Checked {time}"
LEFT_OUT = "Some entries were left out to fit Teams' limits."

IN_PROGRESS = f"⏳ {wording.IN_PROGRESS}"
OUTCOME_MARKS = {"completed": "✅", "refused": "⛔", "halted": "⏸️", "failed": "❌"}
OUTCOMES = {status: f"{OUTCOME_MARKS[status]} {label}"
            for status, label in wording.OUTCOMES.items()}
INCIDENT_MARKS = {events.TOOL_REFUSED: "⛔", events.RUN_REFUSED: "🚫", events.RUN_HALTED: "⏸️"}
INCIDENTS = {event: f"{INCIDENT_MARKS[event]} {label}"
             for event, label in wording.INCIDENTS.items()}


@dataclass(frozen=True, slots=True)
class TeamsReply:
    """An outcome as Teams shows it.

    Attributes:
        text: The message's Markdown text; with a card, the same news in one sentence,
            for notifications and for clients that cannot show the card.
        card: An Adaptive Card to attach (a halt with its figures); ``None`` for text only.
    """

    text: str
    card: dict[str, Any] | None = None


def escape(text: str) -> str:
    """Text from a person or a model, made safe for a Teams message.

    Teams reads HTML in a message, and ``<at>…</at>`` as a mention; escaped, both show
    as written. Markdown is left alone: a model's answer keeps its emphasis and lists.
    """
    return html.escape(text, quote=False)


def refusal(reason: str) -> str:
    """The reply to a request refused before any run started."""
    return REFUSALS.get(reason, wording.REFUSED)


def help_text() -> str:
    """What one can ask, and the words the bot understands."""
    return HELP


def linked(tenant_name: str) -> str:
    """``link`` with a good code: the organization is linked."""
    return LINKED.format(tenant=escape(tenant_name))


def link_failed(reason: str) -> str:
    """``link`` with a code that did not link the organization: why, and who can fix it."""
    return LINK_FAILURES.get(reason, LINK_FAILED)


def installed_pending() -> str:
    """Added to a team or a chat of an organization that is not linked yet: how to link."""
    return INSTALLED_PENDING


def tool_refused(capability: str, reason: str) -> str:
    """A line naming a tool the agent was not allowed to use, and who can fix it."""
    why = wording.TOOL_REASONS.get(reason, wording.TOOL_NOT_ALLOWED)
    return "⛔ " + wording.TOOL_REFUSED.format(capability=f"**{escape(capability)}**", why=why)


def failure() -> str:
    """A run that failed: a plain sentence, never a traceback."""
    return wording.FAILURE


def resume_denied() -> str:
    """Somebody else pressed another person's Resume."""
    return wording.RESUME_DENIED


def resume_started() -> str:
    """Resume was accepted."""
    return f"▶️ {wording.RESUMING}"


def principal_line(principal: str) -> str:
    """Who the person is to Tenantry, for the operator to grant a role to."""
    return PRINCIPAL_LINE.format(principal=principal)


def verify_denied() -> str:
    """Somebody who is not an admin pressed Verify."""
    return VERIFY_DENIED


def verify_started() -> str:
    """Verify was accepted; the result follows as a card."""
    return VERIFY_STARTED


def already_resumed() -> str:
    """Resume was pressed again on a request that is already running or done."""
    return ALREADY_RESUMED


def _unconfirmed(capability: str) -> str:
    """A tool that must not repeat may have run before a crash: a person checks."""
    return "⚠️ " + wording.UNCONFIRMED.format(capability=f"**{escape(capability)}**")


def _paused(reached: wording.Reached) -> str:
    return f"⏸️ {wording.PAUSED.format(reached=reached.described)}"


def _halt(detail: dict[str, Any]) -> wording.Reached | str:
    """The ceiling a halt reached, or the capability of an unconfirmed tool's halt."""
    ceiling = str(detail.get("ceiling", ""))
    if ceiling == wording.UNCONFIRMED_TOOL:
        return str(detail.get("capability", "a tool"))
    return wording.reached(ceiling, detail.get("limit"), detail.get("used"))


def halt_card(run_id: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A budget halt with its figures and, for a per-run ceiling, a Resume action.

    Resume sends ``RESUME_VERB`` with ``{"run_id": run_id}``; the handler decides who
    may resume, from authentication, never from the card.
    """
    reached = _halt(detail)
    if isinstance(reached, str):
        return cards.card([cards.text(_unconfirmed(reached))])
    body = [
        cards.text(PAUSED_TITLE, weight="Bolder"),
        cards.text(wording.PAUSED.format(reached=reached.described)),
        cards.facts([(LIMIT_REACHED, reached.what), (LIMIT, reached.limit),
                     (USED, reached.used)]),
        cards.text(wording.RESUME_HINT if reached.resumable else wording.ALLOWANCE_HINT,
                   isSubtle=True),
    ]
    actions = [cards.execute(RESUME_BUTTON, RESUME_VERB, {"run_id": run_id},
                             style="positive")] if reached.resumable else []
    return cards.card(body, actions)


def outcome(result: RunOutcome) -> TeamsReply:
    """How a run's outcome reads in its conversation."""
    if result.status == "completed":
        parts = [escape(result.answer or ""),
                 *(tool_refused(c, r) for c, r in result.refused_tools)]
        return TeamsReply("\n\n".join(part for part in parts if part))
    if result.status == "halted" and result.halt is not None:
        reached = _halt(result.halt)
        if isinstance(reached, str):
            return TeamsReply(_unconfirmed(reached))
        return TeamsReply(_paused(reached), halt_card(result.run_id, result.halt))
    if result.status == "refused":  # accepted, then refused when a worker took it up
        return TeamsReply(refusal(result.error or ""))
    return TeamsReply(failure())


def invoke_reply(text: str) -> dict[str, Any]:
    """A card that replaces the one whose action was pressed, saying what happened."""
    return cards.card([cards.text(text)])


def _heading(words: str) -> Element:
    return cards.text(words, weight="Bolder", size="Medium", separator=True, spacing="Medium")


def _quiet(words: str) -> Element:
    return cards.text(words, isSubtle=True)


def _name(text: str) -> Element:
    """An id or a name from outside, shown as written."""
    return cards.run(wording.clip(text, NAME_CHARS), fontType="Monospace")


def _run_entry(run: RecentRun) -> Element:
    prompt = wording.excerpt(run.prompt, wording.PROMPT_CHARS)
    return cards.group(
        cards.text(f"{OUTCOMES.get(run.status, IN_PROGRESS)} · "
                   f"{format_microcents(run.cost_microcents)} · {cards.when(run.created_at)}"),
        cards.literal(cards.run(f"“{prompt}”", italic=True, isSubtle=True), spacing="None"),
        spacing="Small")


def _share_entry(share: Share) -> Element:
    figures = wording.share_figures(share.runs, share.tokens, share.cost_microcents,
                                    share.tool_calls)
    return cards.literal(_name(share.principal_id), f" · {figures}", spacing="Small")


def _incident_entry(incident: Incident) -> Element:
    reason = wording.INCIDENT_REASONS.get(incident.reason, incident.reason)
    what: list[Element | str]
    if incident.event == events.RUN_HALTED:
        what = [wording.reached(incident.ceiling, incident.limit, incident.used).described]
    elif incident.event == events.TOOL_REFUSED:
        what = [cards.run(wording.clip(incident.capability, NAME_CHARS), weight="Bolder"),
                f": {reason}"]
    else:
        what = [reason]
    return cards.group(
        cards.text(f"{INCIDENTS[incident.event]} · {cards.when(incident.time)}"),
        cards.literal(_name(incident.principal_id or wording.UNKNOWN_PRINCIPAL), " · ", *what,
                      spacing="None"),
        spacing="Small")


def _admin(admin: AdminStanding) -> list[Element]:
    shares = [_share_entry(share) for share in admin.shares] or [
        _quiet(wording.NO_PRINCIPALS)]
    if admin.more_shares:
        shares.append(_quiet(wording.MORE_PRINCIPALS.format(count=len(admin.shares))))
    checkpoint = admin.checkpoint
    signed = wording.NO_CHECKPOINT if checkpoint is None else CHECKPOINT.format(
        size=checkpoint.size, root=checkpoint.root[:wording.ROOT_CHARS] + "…",
        time=cards.when(checkpoint.signed_at))
    return [
        _heading(wording.PRINCIPALS_HEADING), *shares,
        _heading(wording.INCIDENTS_HEADING),
        *([_incident_entry(i) for i in admin.incidents] or [_quiet(wording.NO_INCIDENTS)]),
        _heading(wording.AUDIT_HEADING), cards.text(signed),
    ]


def _verification(report: VerifyReport) -> Element:
    """How a verification reads: ok with its figures, or where the log stops holding."""
    if report.ok:
        lines = [cards.text(VERIFIED.format(
            size=report.size, root=report.root[:wording.ROOT_CHARS] + "…",
            checkpoints=wording.count(report.checkpoints_checked, "signed checkpoint")),
            color="Good")]
    else:
        where = "" if report.first_bad_seq is None else FROM_EVENT.format(seq=report.first_bad_seq)
        lines = [cards.text(NOT_VERIFIED.format(where=where), color="Attention"),
                 cards.literal(report.reason or UNKNOWN_REASON, spacing="None")]
    checked = cards.text(CHECKED_AT.format(time=cards.when(datetime.now(UTC))), isSubtle=True)
    return cards.group(*lines, checked, separator=True, spacing="Medium")


def standing_card(standing: TenantStanding, *,
                  verified: VerifyReport | None = None) -> dict[str, Any]:
    """A tenant's standing as the Slack App Home shows it, as an Adaptive Card.

    Everyone sees the month against the allowance and their own recent requests; an
    admin's standing adds usage by person, recent refusals and halts, the latest
    signed checkpoint and a Verify action (``VERIFY_VERB``, without data: the handler
    takes the tenant from authentication). ``verified`` adds a verification's result
    at the bottom. A card over Teams' size limit loses entries from its end, marked,
    never the verification or the action.
    """
    usage = []
    for figure in standing.usage:
        bar, label = wording.gauge(figure.used, figure.allowance)
        usage.append((wording.ALLOWANCES[figure.name], USAGE_VALUE.format(
            bar=bar, label=label, used=wording.amount(figure.name, figure.used),
            allowance=wording.amount(figure.name, figure.allowance))))
    body: list[Element] = [
        cards.literal(cards.run(wording.clip(TITLE.format(tenant=standing.tenant_name),
                                             TITLE_CHARS), size="Large", weight="Bolder")),
        cards.literal(cards.run(PERIOD.format(plan=standing.plan_id, period=standing.period,
                                              zone=standing.time_zone), isSubtle=True),
                      spacing="None"),
    ]
    if standing.suspended:
        body.append(cards.text(f"⚠️ {wording.SUSPENDED}", color="Attention"))
    body += [_heading(wording.USAGE_HEADING), cards.facts(usage),
             _heading(wording.RUNS_HEADING),
             *([_run_entry(run) for run in standing.recent] or [_quiet(NO_RUNS)])]
    actions: list[Element] = []
    if standing.admin is not None:
        body += _admin(standing.admin)
        actions.append(cards.execute(wording.VERIFY_BUTTON, VERIFY_VERB))
    tail = [] if verified is None else [_verification(verified)]
    return cards.fit(body, tail, actions, _quiet(LEFT_OUT), full_width=True)


def digest(title: str, text: str) -> str:
    """A digest's post in its conversation: its name in bold, then the answer or what
    stopped it."""
    return f"**{escape(title)}**\n\n{escape(text)}"
