"""Every word Tenantry says in Slack, and the Block Kit it says it with.

One module, so wording is reviewed in one place and handlers never format text.
"""

from __future__ import annotations

from typing import Any

from core.prices import format_microcents

RESUME_ACTION = "tenantry_resume"
VERIFY_ACTION = "tenantry_verify_audit"

REFUSALS = {
    "not_linked": (
        "This workspace isn't linked to a Tenantry account yet, so I can't answer here. "
        "Ask your account's owner for an install link to connect it."
    ),
    "link_revoked": (
        "This workspace's link to its Tenantry account was removed (the app was "
        "uninstalled or its tokens revoked). A workspace admin can reinstall it with a new "
        "install link."
    ),
    "tenant_suspended": (
        "This account is suspended, so I can't start new requests. Your account's owner "
        "can contact support to restore it."
    ),
    "allowance_exhausted": (
        "This account has used its AI allowance for this month. An admin of your account "
        "can raise the plan, or requests resume when the new month starts."
    ),
}

TOOL_REASONS = {
    "not_licensed": "your plan doesn't include it; an account admin can upgrade the plan",
    "forbidden": "your role doesn't allow it; an account admin can grant you access",
    "not_resolved": "it isn't available to this workspace",
    "not_in_scope": "it isn't available for this request",
}

CEILINGS = {
    "tokens": "the per-request token limit",
    "tool_calls": "the per-request tool-call limit",
    "walltime_ms": "the per-request time limit",
    "cost_microcents": "the per-request cost limit",
    "monthly_tokens": "the monthly token allowance",
    "monthly_tool_calls": "the monthly tool-call allowance",
    "monthly_cost_microcents": "the monthly cost allowance",
}

ACK_WORKING = "On it: I'll answer in a thread."
ANSWER_PENDING = ":hourglass_flowing_sand: Working on it…"


def refusal(reason: str) -> str:
    """The reply to a request refused before any run started."""
    return REFUSALS.get(reason, "I can't take this request right now.")


def _amount(ceiling: str, value: int) -> str:
    if ceiling.endswith("cost_microcents"):
        return format_microcents(value)
    if ceiling == "walltime_ms":
        return f"{value / 1000:.1f} s"
    return f"{value:,}"


def halt_blocks(run_id: str, halt: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A budget halt with its figures and a Resume button."""
    ceiling = str(halt.get("ceiling", ""))
    limit = _amount(ceiling, int(halt.get("limit", 0)))
    used = _amount(ceiling, int(halt.get("used", 0)))
    what = CEILINGS.get(ceiling, ceiling)
    text = (f"I paused this request: it reached {what} (limit {limit}, used {used}). "
            "Press Resume to continue from where I stopped with a fresh budget.")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":pause_button: {text}"}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn",
                          "text": f"ceiling `{ceiling}` · limit {limit} · used {used}"}],
        },
    ]
    if not ceiling.startswith("monthly_"):
        blocks.append({
            "type": "actions",
            "elements": [{
                "type": "button", "action_id": RESUME_ACTION, "value": run_id,
                "style": "primary", "text": {"type": "plain_text", "text": "Resume"},
            }],
        })
    return text, blocks


def tool_refused(capability: str, reason: str) -> str:
    """A line naming a tool the agent was not allowed to use, and who can fix it."""
    why = TOOL_REASONS.get(reason, "it isn't allowed here")
    return f":no_entry: I couldn't use *{capability}*: {why}."


def failure(error: str | None) -> str:
    """A run that failed: a plain sentence, never a traceback."""
    return ("Sorry, something went wrong while answering and I had to stop. "
            "You can ask again; if it keeps happening, tell your account admin.")


def resume_denied() -> str:
    """Somebody else pressed another person's Resume button."""
    return "Only the person who asked, or an admin of this account, can resume this request."


def resume_started() -> str:
    """The Resume button was accepted."""
    return ":arrow_forward: Resuming with a fresh budget…"
