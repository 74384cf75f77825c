"""Every word Tenantry says in Slack, and the Block Kit it says it with.

One module, so wording is reviewed in one place and handlers never format text.
What Slack says the same as every other transport comes from ``bots.wording``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from bots import wording
from core.agent import RunOutcome
from installs.oauth import InstallResult

RESUME_ACTION = "tenantry_resume"
VERIFY_ACTION = "tenantry_verify_audit"
DIGEST_ACTION = "tenantry_digest_toggle"

REFUSALS = {
    "not_linked": (
        "This workspace isn't linked to a Tenantry account yet, so I can't answer here. "
        "Ask your account's owner for an install link to connect it."
    ),
    "not_installed": (
        "Tenantry isn't installed in this workspace any more, so I can't answer here. "
        "A workspace admin can reinstall it with an install link from your Tenantry account."
    ),
    "link_revoked": (
        "This workspace's link to its Tenantry account was removed (the app was "
        "uninstalled or its tokens revoked). A workspace admin can reinstall it with a new "
        "install link."
    ),
    **wording.REFUSALS,
}

ACK_WORKING = "On it: I'll answer in a thread."
ANSWER_PENDING = ":hourglass_flowing_sand: Working on it…"
STATUS_WORKING = "Working on it"


def status_using(capability: str) -> str:
    """The status line while a tool runs: which capability, by its name."""
    return f"Using {capability}"


STATUS_DONE = {"completed": "Done", "halted": "Paused", "failed": "Stopped"}


@dataclass(frozen=True, slots=True)
class Rendered:
    """An outcome as Slack shows it: markdown text, and blocks to put under it.

    Attributes:
        text: What a stream writes, and the notification text of an edited message.
        footer: Blocks below the text (a Resume button); empty for a plain answer.
        status: The final state of the stream's status line: ``complete`` or ``error``.
        title: The status line's final title.
    """

    text: str
    footer: list[dict[str, Any]] = field(default_factory=list)
    status: str = "complete"
    title: str = "Done"

    def blocks(self) -> list[dict[str, Any]]:
        """The blocks of the whole message when it is edited rather than streamed.

        Slack shows only the blocks of a message that has any, so the text goes into a
        section first; an empty list clears the blocks of an earlier state.
        """
        if not self.footer:
            return []
        return [{"type": "section", "text": {"type": "mrkdwn", "text": self.text}}, *self.footer]


def quiet(text: str) -> str:
    """``text`` with Slack's broadcast mentions (``<!channel>``, ``<!here>``, groups) disarmed.

    Prompts are echoed and models can be talked into writing anything; neither may make
    the app notify a whole channel or user group. Escaping the ``<`` of ``<!`` is what
    Slack's own escaping rules prescribe for text that must show literally.
    """
    return text.replace("<!", "&lt;!")


def ask_hint(command: str) -> str:
    """The reply to an empty slash command or a bare mention."""
    return f"Ask me something, e.g. `{command} what changed this week?`"


def asked(user_id: str, prompt: str) -> str:
    """The visible message a slash command's thread hangs from."""
    return f"<@{user_id}> asked: {quiet(prompt)}"


def cannot_post() -> str:
    """A slash command in a channel the app may not write to."""
    return ("I can't post in this channel. Invite me to it (`/invite @Tenantry`) or ask me "
            "in a direct message.")


def refusal(reason: str) -> str:
    """The reply to a request refused before any run started."""
    return REFUSALS.get(reason, wording.REFUSED)


def unconfirmed(capability: str) -> Rendered:
    """A tool that must not repeat may have run before a crash: a person checks."""
    text = ":warning: " + wording.UNCONFIRMED.format(capability=f"*{capability}*")
    return Rendered(text, status="complete", title=STATUS_DONE["halted"])


def halt(run_id: str, detail: dict[str, Any]) -> Rendered:
    """A budget halt with its figures and, for a per-run ceiling, a Resume button."""
    ceiling = str(detail.get("ceiling", ""))
    if ceiling == wording.UNCONFIRMED_TOOL:
        return unconfirmed(str(detail.get("capability", "a tool")))
    reached = wording.reached(ceiling, detail.get("limit"), detail.get("used"))
    text = ":pause_button: " + wording.PAUSED.format(reached=reached.described) + " "
    text += wording.RESUME_HINT if reached.resumable else wording.ALLOWANCE_HINT
    figures = f"ceiling `{ceiling}` · limit {reached.limit} · used {reached.used}"
    footer: list[dict[str, Any]] = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": figures}]},
    ]
    if reached.resumable:
        footer.append({
            "type": "actions",
            "elements": [{
                "type": "button", "action_id": RESUME_ACTION, "value": run_id,
                "style": "primary", "text": {"type": "plain_text", "text": "Resume"},
            }],
        })
    return Rendered(text, footer, status="complete", title=STATUS_DONE["halted"])


def outcome(result: RunOutcome) -> Rendered:
    """How a run's outcome reads in its thread."""
    if result.status == "completed":
        lines = [quiet(result.answer or "")]
        refused = [tool_refused(c, r) for c, r in result.refused_tools]
        if refused:
            lines += ["", *refused]
        return Rendered("\n".join(lines), title=STATUS_DONE["completed"])
    if result.status == "halted" and result.halt is not None:
        return halt(result.run_id, result.halt)
    if result.status == "refused":  # accepted, then refused when a worker took it up
        return Rendered(refusal(result.error or ""), title=STATUS_DONE["failed"])
    return Rendered(failure(result.error), status="error", title=STATUS_DONE["failed"])


def tool_refused(capability: str, reason: str) -> str:
    """A line naming a tool the agent was not allowed to use, and who can fix it."""
    why = wording.TOOL_REASONS.get(reason, wording.TOOL_NOT_ALLOWED)
    return ":no_entry: " + wording.TOOL_REFUSED.format(capability=f"*{capability}*", why=why)


def failure(error: str | None) -> str:
    """A run that failed: a plain sentence, never a traceback."""
    return wording.FAILURE


def resume_denied() -> str:
    """Somebody else pressed another person's Resume button."""
    return wording.RESUME_DENIED


def resume_started() -> str:
    """The Resume button was accepted."""
    return f":arrow_forward: {wording.RESUMING}"


INSTALL_FAILURES = {
    "bad_signature": "This install link wasn't issued by this Tenantry deployment.",
    "expired": "This install link has expired. Ask your account's owner for a new one.",
    "already_used": "This install link was already used. Ask your account's owner for a new one.",
    "unknown_link": "This install link isn't known here. Ask your account's owner for a new one.",
    "unknown_tenant": "The account this install link was made for no longer exists.",
    "tenant_suspended": "The account this install link was made for is suspended.",
}
"""Why an install link is refused before the installer is sent to Slack."""


def install_page(title: str, message: str) -> str:
    """A minimal HTML page for the browser at the end of (or instead of) Slack's OAuth."""
    title, message = html.escape(title, quote=False), html.escape(message, quote=False)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title></head><body><h1>{title}</h1><p>{message}</p></body></html>"
    )


def install_failed(reason: str) -> str:
    """The page for an install refused before it reached Slack (a dead install link)."""
    message = INSTALL_FAILURES.get(
        reason, "Something went wrong while installing. Start again from your install link.")
    return install_page("Tenantry was not installed", message)


def install_done(result: InstallResult | None) -> str:
    """The page after Slack's redirect: installed, and whether the workspace is linked."""
    where = "organization" if result is not None and result.is_enterprise_install else "workspace"
    if result is not None and result.linked:
        return install_page("Tenantry is installed",
                            f"Your {where} is linked to its Tenantry account. Mention @Tenantry "
                            "or use the slash command to ask something.")
    return install_page(
        "Tenantry is installed, but not linked",
        f"This {where} isn't linked to a Tenantry account yet, so Tenantry won't answer there. "
        "Ask your account's owner for an install link and install again with it.")


DIGEST_MARKS = {"answer": ":newspaper:", "halt": ":pause_button:", "refusal": ":no_entry_sign:",
                "failure": ":x:"}


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def digest(title: str, text: str, kind: str) -> str:
    """A digest's post in its channel: its name in bold, then the answer or what stopped it."""
    return f"{DIGEST_MARKS.get(kind, '')} *{_mrkdwn_escape(title)}*\n{quiet(text)}"


def digest_for_admin(title: str, text: str, channel: str) -> str:
    """A digest's halt or refusal as an admin's direct message: the words and where."""
    return wording.DIGEST_FOR_ADMINS.format(text=quiet(text), title=_mrkdwn_escape(title),
                                            where=f"<#{channel}>")
