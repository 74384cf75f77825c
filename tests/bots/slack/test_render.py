"""Tests of ``bots.slack.render``: how outcomes and install results read in Slack."""

from __future__ import annotations

from bots.slack import render
from core.agent import RunOutcome
from installs.oauth import InstallResult


def outcome(status: str, **fields: object) -> RunOutcome:
    return RunOutcome(run_id="r1", tenant_id="acme", status=status, model="sandbox",
                      **fields)  # type: ignore[arg-type]


def test_an_answer_is_plain_text_without_blocks() -> None:
    shown = render.outcome(outcome("completed", answer="42"))
    assert (shown.text, shown.footer, shown.blocks(), shown.status) == ("42", [], [], "complete")


def test_refused_tools_are_named_under_the_answer() -> None:
    shown = render.outcome(outcome("completed", answer="partial",
                                   refused_tools=(("audit.recent", "forbidden"),)))
    assert shown.text.splitlines() == [
        "partial", "", ":no_entry: I couldn't use *audit.recent*: your role doesn't allow it; "
        "an account admin can grant you access."]


def test_a_per_run_halt_offers_resume_and_a_monthly_one_does_not() -> None:
    per_run = render.outcome(outcome("halted", halt={"ceiling": "tokens", "limit": 1000,
                                                     "used": 1200}))
    monthly = render.outcome(outcome("halted", halt={"ceiling": "monthly_tokens", "limit": 5,
                                                     "used": 5}))

    assert "per-request token limit (limit 1,000, used 1,200)" in per_run.text
    assert [b["type"] for b in per_run.footer] == ["context", "actions"]
    assert [b["type"] for b in per_run.blocks()] == ["section", "context", "actions"]
    assert per_run.blocks()[0]["text"]["text"] == per_run.text
    assert [b["type"] for b in monthly.footer] == ["context"]
    assert "Resume" not in monthly.text


def test_a_tool_that_may_have_run_asks_a_person_to_check_and_offers_no_resume() -> None:
    shown = render.outcome(outcome("halted", halt={
        "ceiling": "unconfirmed_tool", "limit": 0, "used": 0, "capability": "crm.refund"}))

    assert "*crm.refund* may or may not have completed" in shown.text
    assert "must not run twice" in shown.text
    assert shown.footer == [] and "Resume" not in shown.text
    assert "limit 0" not in shown.text


def test_a_failure_never_shows_the_error() -> None:
    shown = render.outcome(outcome("failed", error="KeyError: 'secret' at line 3"))
    assert "KeyError" not in shown.text and shown.status == "error"


def test_install_pages_say_whether_the_workspace_is_linked_and_escape_html() -> None:
    linked = InstallResult(None, "T1", False, "acme", linked_now=True)
    unlinked = InstallResult("E1", None, True, None, linked_now=False, reason="no_claim")

    assert "Your workspace is linked" in render.install_done(linked)
    assert "This organization isn't linked" in render.install_done(unlinked)
    assert "<script>" not in render.install_page("<script>", "x")
    assert "&lt;script&gt;" in render.install_page("<script>", "x")
    assert "expired" in render.install_failed("expired")
    assert "Start again" in render.install_failed("something_new")


def test_echoed_prompts_and_answers_cannot_ping_a_whole_channel() -> None:
    assert render.asked("U1", "hey <!channel> and <!subteam^S1|@eng>") == (
        "<@U1> asked: hey &lt;!channel> and &lt;!subteam^S1|@eng>")
    shown = render.outcome(outcome("completed", answer="ping <!here> now, <@U2>"))
    assert shown.text == "ping &lt;!here> now, <@U2>"
