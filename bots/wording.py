"""The words every transport says alike, without any platform's markup.

Each transport's ``render`` module is still the one place its wording is reviewed;
what it says the same as another transport (the names of the ceilings, why a tool
was refused, how an amount reads, what became of a request) comes from here, so
Slack and Teams cannot drift apart on a figure or a reason. Nothing here escapes
text or adds emphasis: that is the transport's markup.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.audit import events
from core.prices import format_microcents

REFUSALS = {
    "tenant_suspended": (
        "This account is suspended, so I can't start new requests. Your account's owner "
        "can contact support to restore it."
    ),
    "allowance_exhausted": (
        "This account has used its AI allowance for this month. An admin of your account "
        "can raise the plan, or requests resume when the new month starts."
    ),
    "run_ceiling_too_small": (
        "This request is too large for one answer under your plan's per-request limits. "
        "Try a shorter request, or ask an admin of your account to raise the plan."
    ),
    "unreadable": "I couldn't read who sent this request, so I can't answer it.",
}
"""Refusals before a run starts that read the same on every platform; each transport
adds its own words for a chat space that is not linked, or no longer is."""

REFUSED = "I can't take this request right now."
MODEL_UNAVAILABLE = ("this deployment cannot run requests now: it is misconfigured, and "
                     "its operators have been told")
"""What an API or MCP caller is told when the deployment, not the request, is at fault
(the server logged what is missing)."""
"""A refusal for a reason no transport has words for yet."""

TOOL_REASONS = {
    "not_licensed": "your plan doesn't include it; an account admin can upgrade the plan",
    "forbidden": "your role doesn't allow it; an account admin can grant you access",
    "not_resolved": "it isn't set up for this account",
    "not_in_scope": "it isn't available for this request",
}
TOOL_NOT_ALLOWED = "it isn't allowed here"
TOOL_REFUSED = "I couldn't use {capability}: {why}."

CEILINGS = {
    "tokens": "the per-request token limit",
    "tool_calls": "the per-request tool-call limit",
    "walltime_ms": "the per-request time limit",
    "cost_microcents": "the per-request cost limit",
    "monthly_tokens": "the monthly token allowance",
    "monthly_tool_calls": "the monthly tool-call allowance",
    "monthly_cost_microcents": "the monthly cost allowance",
}

UNCONFIRMED_TOOL = "unconfirmed_tool"
"""The halt of a tool that must not repeat and may have run before an interruption."""

PAUSED = "I paused this request: it reached {reached}."
RESUME_HINT = "Press Resume to continue from where I stopped with a fresh budget."
ALLOWANCE_HINT = "It can continue once the account has allowance again."
UNCONFIRMED = ("I stopped this request: {capability} may or may not have completed before "
               "an interruption, and it must not run twice. Please check whether it took "
               "effect, then ask again if it did not.")
FAILURE = ("Sorry, something went wrong while answering and I had to stop. "
           "You can ask again; if it keeps happening, tell your account admin.")
RESUME_DENIED = "Only the person who asked, or an admin of this account, can resume this request."
RESUMING = "Resuming with a fresh budget…"

ALLOWANCES = {"tokens": "Tokens", "cost_microcents": "Cost", "tool_calls": "Tool calls"}
"""The month's three figures, in the order they are shown."""

OUTCOMES = {"completed": "answered", "refused": "refused", "halted": "halted",
            "failed": "failed"}
IN_PROGRESS = "in progress"
INCIDENTS = {events.TOOL_REFUSED: "tool refused", events.RUN_REFUSED: "request refused",
             events.RUN_HALTED: "request halted"}
INCIDENT_REASONS = {
    "not_licensed": "not in the plan", "forbidden": "the person's role doesn't allow it",
    "not_resolved": "not set up here", "not_in_scope": "not in the request's scope",
    "tenant_suspended": "account suspended", "allowance_exhausted": "monthly allowance used up",
    "not_linked": "not linked to the account", "link_revoked": "link to the account removed",
}
UNKNOWN_PRINCIPAL = "unknown"

SUSPENDED = "This account is suspended: new requests are refused."
USAGE_HEADING = "This month's usage"
RUNS_HEADING = "Your recent requests"
PRINCIPALS_HEADING = "Usage by person this month"
NO_PRINCIPALS = "Nobody has used the allowance this month."
MORE_PRINCIPALS = "Only the top {count} by cost are shown."
INCIDENTS_HEADING = "Recent refusals and halts"
NO_INCIDENTS = "No refusals or halts."
AUDIT_HEADING = "Audit log"
NO_CHECKPOINT = "No signed checkpoint yet; the log is still checked event by event."
VERIFY_BUTTON = "Verify audit log"
"""The headings and fixed lines of a tenant's standing, wherever it is shown."""

PROMPT_CHARS = 80
"""How much of a prompt a list of requests recalls."""
ROOT_CHARS = 12
"""How many hex digits of an audit root are shown: enough to compare by eye."""
GAUGE_CELLS = 10
NO_ALLOWANCE = "no allowance"


def amount(ceiling: str, value: object) -> str:
    """A figure of a ceiling or an allowance as it reads: dollars, seconds or a count.

    Anything that is not a number (a field missing from an old event) reads as zero.
    """
    number = int(value) if isinstance(value, int | float) else 0
    if ceiling.endswith("cost_microcents"):
        return format_microcents(number)
    if ceiling == "walltime_ms":
        return f"{number / 1000:.1f} s"
    return f"{number:,}"


def count(number: int, noun: str) -> str:
    """``1 request``, ``2 requests``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(text: str, limit: int) -> str:
    """A person's text on one line, clipped: how a prompt is recalled in a list."""
    return clip(" ".join(text.split()), limit)


def gauge(used: int, allowance: int) -> tuple[str, str]:
    """A ten-cell bar and a whole percentage, rounded down so 100% means spent.

    Returns:
        The bar (``▓▓▓▓░░░░░░``) and its label (``42%``, ``<1%`` or ``no allowance``).
    """
    if allowance <= 0:
        return "░" * GAUGE_CELLS, NO_ALLOWANCE
    filled = min(GAUGE_CELLS, used * GAUGE_CELLS // allowance)
    percent = used * 100 // allowance
    label = "<1%" if used > 0 and percent == 0 else f"{percent}%"
    return "▓" * filled + "░" * (GAUGE_CELLS - filled), label


def share_figures(runs: int, tokens: int, cost_microcents: int, tool_calls: int) -> str:
    """One person's share of the month: ``2 requests · 1,234 tokens · $0.0100 · 3 tool calls``."""
    return (f"{count(runs, 'request')} · {tokens:,} tokens · {format_microcents(cost_microcents)}"
            f" · {count(tool_calls, 'tool call')}")


@dataclass(frozen=True, slots=True)
class Reached:
    """A ceiling a run reached, in words.

    Attributes:
        ceiling: The ceiling's code (``tokens``, ``monthly_cost_microcents``, ...).
        what: Its name (``the per-request token limit``).
        limit: The limit, as it reads.
        used: What was used, as it reads.
    """

    ceiling: str
    what: str
    limit: str
    used: str

    @property
    def resumable(self) -> bool:
        """A per-run ceiling can be resumed with a fresh budget; a monthly one cannot."""
        return not self.ceiling.startswith("monthly_")

    @property
    def described(self) -> str:
        """``the per-request token limit (limit 1,000, used 1,200)``."""
        return f"{self.what} (limit {self.limit}, used {self.used})"


def reached(ceiling: str, limit: object, used: object) -> Reached:
    """The words for a ceiling and its figures, from a halt's detail or its audit event."""
    return Reached(ceiling, CEILINGS.get(ceiling, ceiling), amount(ceiling, limit),
                   amount(ceiling, used))


DIGEST_HALTED = ("This digest stopped before its answer: it reached {reached}. An operator "
                 "can continue it with `tenantry runs resume {run_id}`.")
DIGEST_MONTHLY_HALT = ("This digest stopped before its answer: it reached {reached}. It runs "
                       "again at its next time once the account has allowance.")
DIGEST_REFUSED = "This digest did not run. {why}"
DIGEST_FAILED = ("This digest could not finish; it runs again at its next time. If this "
                 "keeps happening, tell your account admin.")
DIGEST_UNCONFIRMED = ("This digest stopped: {capability} may or may not have completed, "
                      "and it must not run twice. An operator can check it and continue with "
                      "`tenantry runs resume {run_id}`.")
DIGEST_FOR_ADMINS = "{text} (Digest “{title}” in {where}.)"
"""What a digest says when it did not answer; admins get the same words and where."""
