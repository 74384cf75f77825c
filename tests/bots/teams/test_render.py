"""Tests of ``bots.teams.render``: every word Tenantry says in Teams, and its cards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bots import wording
from bots.standing import (
    AdminStanding,
    Allowance,
    AuditCheckpoint,
    Incident,
    RecentRun,
    Share,
    TenantStanding,
)
from bots.teams import cards, render
from core.agent import RunOutcome
from core.audit.verify import VerifyReport
from tests.support.shown import texts

AT = datetime(2025, 6, 3, 14, 5, tzinfo=UTC)
SNEAKY = "hi <at>Everyone</at> <b>bold</b> & [click](https://example.invalid) **loud**"
ROOT = "ab12" * 16


def outcome(status: str, **fields: object) -> RunOutcome:
    return RunOutcome(run_id="r1", tenant_id="acme", status=status, model="sandbox",
                      **fields)  # type: ignore[arg-type]


def standing(*, admin: AdminStanding | None = None, runs: int = 2,
             suspended: bool = False) -> TenantStanding:
    return TenantStanding(
        tenant_id="acme", tenant_name="Acme <at>Corp</at>", plan_id="business",
        period="2025-06", time_zone="Europe/Berlin", suspended=suspended,
        usage=(Allowance("tokens", 1_234, 10_000), Allowance("cost_microcents", 10**6, 10**8),
               Allowance("tool_calls", 0, 50)),
        recent=tuple(RecentRun(f"r{i}", "completed" if i else "halted", 2 * 10**6, AT,
                               SNEAKY if i == 0 else f"question {i}") for i in range(runs)),
        admin=admin)


def oversight(*, shares: int = 2, incidents: int = 1) -> AdminStanding:
    kinds = [
        Incident("run.halted", "teams:t1:u1", AT, ceiling="tokens", limit=1000, used=1200),
        Incident("tool.refused", None, AT, reason="forbidden", capability="audit.recent"),
        Incident("run.refused", "teams:t1:u2", AT, reason="tenant_suspended"),
    ]
    return AdminStanding(
        shares=tuple(Share(f"teams:t1:user{i}", 2, 1_000, 5 * 10**6, 3) for i in range(shares)),
        more_shares=False,
        incidents=tuple(kinds[i % 3] for i in range(incidents)),
        checkpoint=AuditCheckpoint(42, ROOT, AT))


def shown(card: dict[str, Any]) -> str:
    """What a person reads on a card: its texts, runs, facts and action titles."""
    def facts(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            if value.get("type") == "FactSet":
                yield from (f"{f['title']}: {f['value']}" for f in value["facts"])
            for item in value.values():
                yield from facts(item)
        elif isinstance(value, list):
            for item in value:
                yield from facts(item)

    titles = [action["title"] for action in card.get("actions", [])]
    return "\n".join([*texts(card["body"]), *facts(card["body"]), *titles])


def markdown_texts(card: dict[str, Any]) -> list[str]:
    """The texts Teams reads as Markdown: TextBlocks and facts, not TextRuns."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "TextBlock":
                found.append(value["text"])
            if value.get("type") == "FactSet":
                found.extend(f"{f['title']} {f['value']}" for f in value["facts"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(card)
    return found


def test_every_refusal_reason_has_its_own_words() -> None:
    reasons = ["not_linked", "link_revoked", "tenant_suspended", "allowance_exhausted",
               "run_ceiling_too_small", "unreadable"]

    said = {reason: render.refusal(reason) for reason in reasons}

    assert wording.REFUSED not in said.values()
    assert len(set(said.values())) == len(reasons)
    assert "isn't linked to a Tenantry account" in said["not_linked"]
    for unlinked in ("not_linked", "link_revoked"):
        assert "`tenantry teams link-code`" in said[unlinked]
        assert "`link` followed by the code in a 1:1 chat" in said[unlinked]
    assert "Reinstall the app" in said["link_revoked"]
    assert "suspended" in said["tenant_suspended"]
    assert "allowance" in said["allowance_exhausted"]
    assert "per-request limits" in said["run_ceiling_too_small"]
    assert "who sent this" in said["unreadable"]
    assert render.refusal("a_new_reason") == wording.REFUSED


def test_every_link_failure_has_its_own_words_and_names_who_can_fix_it() -> None:
    reasons = ["bad_signature", "expired", "already_used", "unknown_link", "unknown_tenant",
               "tenant_suspended", "not_admin", "not_personal", "conflict", "already_linked"]

    said = {reason: render.link_failed(reason) for reason in reasons}

    assert render.LINK_FAILED not in said.values()
    assert len(set(said.values())) == len(reasons)
    for renewable in ("expired", "already_used", "unknown_link", "bad_signature"):
        assert "`tenantry teams link-code`" in said[renewable]
    assert "Only an owner or admin of the Tenantry account" in said["not_admin"]
    assert "1:1 chat" in said["not_personal"] and "shown to others" in said["not_personal"]
    assert "another Tenantry account" in said["conflict"]
    assert "operator must unlink it" in said["conflict"]
    assert "already linked to this Tenantry account" in said["already_linked"]
    assert render.link_failed("something_new") == render.LINK_FAILED


def test_help_names_every_command_and_linking_says_how() -> None:
    for command in ("`budget`", "`audit`", "`link CODE`", "`help`"):
        assert command in render.help_text()
    assert "`tenantry teams link-code`" in render.installed_pending()
    assert "1:1 chat" in render.installed_pending()
    assert render.linked("Acme & <at>Co</at>") == render.LINKED.format(
        tenant="Acme &amp; &lt;at&gt;Co&lt;/at&gt;")


def test_an_answer_is_escaped_keeps_its_markdown_and_names_refused_tools() -> None:
    reply = render.outcome(outcome("completed", answer=SNEAKY,
                                   refused_tools=(("audit.recent", "forbidden"),)))

    assert reply.card is None
    answer, refused = reply.text.split("\n\n")
    assert "<at>" not in answer and "<b>" not in answer
    assert answer == ("hi &lt;at&gt;Everyone&lt;/at&gt; &lt;b&gt;bold&lt;/b&gt; &amp; "
                      "[click](https://example.invalid) **loud**")
    assert refused == ("⛔ I couldn't use **audit.recent**: your role doesn't allow it; "
                       "an account admin can grant you access.")
    assert render.tool_refused("<at>x</at>", "new") == (
        "⛔ I couldn't use **&lt;at&gt;x&lt;/at&gt;**: it isn't allowed here.")
    assert render.outcome(outcome("completed", answer="")).text == ""


def test_a_per_run_halt_card_has_its_figures_and_resume() -> None:
    reply = render.outcome(outcome("halted", halt={"ceiling": "tokens", "limit": 1000,
                                                   "used": 1200}))

    assert reply.text == ("⏸️ I paused this request: it reached the per-request token limit "
                          "(limit 1,000, used 1,200).")
    assert reply.card is not None
    assert reply.card == render.halt_card("r1", {"ceiling": "tokens", "limit": 1000,
                                                 "used": 1200})
    text = shown(reply.card)
    for fact in ("Limit reached: the per-request token limit", "Limit: 1,000", "Used: 1,200"):
        assert fact in text
    assert wording.RESUME_HINT in text
    assert reply.card["actions"] == [{
        "type": "Action.Execute", "title": "Resume", "verb": render.RESUME_VERB,
        "data": {"run_id": "r1"}, "style": "positive"}]
    assert render.RESUME_VERB == "tenantry.resume"


@pytest.mark.parametrize(("ceiling", "limit", "reads"), [
    ("monthly_tokens", 5, "5"), ("monthly_cost_microcents", 10**8, "$1.0000"),
    ("monthly_tool_calls", 7, "7")])
def test_a_monthly_halt_waits_for_allowance_and_offers_no_resume(
        ceiling: str, limit: int, reads: str) -> None:
    card = render.halt_card("r1", {"ceiling": ceiling, "limit": limit, "used": limit})

    assert "actions" not in card
    assert wording.ALLOWANCE_HINT in shown(card) and "Resume" not in shown(card)
    assert f"Limit: {reads}" in shown(card) and f"Used: {reads}" in shown(card)
    assert wording.CEILINGS[ceiling] in shown(card)


def test_a_tool_that_may_have_run_asks_a_person_to_check_and_offers_no_resume() -> None:
    detail = {"ceiling": "unconfirmed_tool", "limit": 0, "used": 0, "capability": "crm.refund"}

    reply = render.outcome(outcome("halted", halt=detail))
    card = render.halt_card("r1", detail)

    assert reply.card is None
    assert "**crm.refund** may or may not have completed" in reply.text
    assert "must not run twice" in reply.text and "limit 0" not in reply.text
    assert "actions" not in card and "must not run twice" in shown(card)


def test_a_failure_is_a_plain_sentence_without_the_error() -> None:
    reply = render.outcome(outcome("failed", error="KeyError: 'secret' at line 3"))

    assert reply == render.TeamsReply(render.failure())
    assert "KeyError" not in reply.text and "went wrong" in reply.text


def test_resume_replies_and_invoke_cards() -> None:
    assert "Only the person who asked, or an admin" in render.resume_denied()
    assert "Resuming" in render.resume_started()
    assert "already been resumed" in render.already_resumed()
    card = render.invoke_reply(render.resume_started())
    assert card["body"] == [cards.text(render.resume_started())] and "actions" not in card


def test_a_members_card_shows_the_month_and_their_requests_only() -> None:
    card = render.standing_card(standing())
    text = shown(card)

    assert "Tokens: ▓░░░░░░░░░ 12% · 1,234 of 10,000" in text
    assert "Cost: ░░░░░░░░░░ 1% · $0.0100 of $1.0000" in text
    assert "Tool calls: ░░░░░░░░░░ 0% · 0 of 50" in text
    assert "Plan business · billing month 2025-06 (Europe/Berlin)" in text
    assert "“question 1”" in text and "✅ answered · $0.0200 · {{DATE(" in text
    assert "⏸️ halted" in text
    for admin_only in (wording.PRINCIPALS_HEADING, wording.INCIDENTS_HEADING,
                       wording.AUDIT_HEADING, wording.VERIFY_BUTTON):
        assert admin_only not in text
    assert "actions" not in card and wording.SUSPENDED not in text
    assert wording.SUSPENDED in shown(render.standing_card(standing(suspended=True)))
    assert render.NO_RUNS in shown(render.standing_card(standing(runs=0)))


def test_what_people_wrote_is_shown_as_written_never_read_as_markup() -> None:
    card = render.standing_card(standing(admin=oversight()))

    assert "“" + wording.excerpt(SNEAKY, wording.PROMPT_CHARS) + "”" in shown(card)
    assert "Tenantry · Acme <at>Corp</at>" in shown(card)
    for markdown in markdown_texts(card):
        assert "<at>" not in markdown and "click" not in markdown and "Corp" not in markdown
        assert "teams:t1:" not in markdown, "principal ids are shown as written"
    assert card["msteams"] == {"width": "Full"}, "no mention entities"


def test_an_admins_card_adds_shares_incidents_the_checkpoint_and_verify() -> None:
    card = render.standing_card(standing(admin=oversight(incidents=3)))
    text = shown(card)

    for heading in (wording.PRINCIPALS_HEADING, wording.INCIDENTS_HEADING,
                    wording.AUDIT_HEADING):
        assert heading in text
    assert "teams:t1:user0\n · 2 requests · 1,000 tokens · $0.0500 · 3 tool calls" in text
    assert "⏸️ request halted · {{DATE(2025-06-03T14:05:00Z, SHORT)}}" in text
    assert "teams:t1:u1\n · \nthe per-request token limit (limit 1,000, used 1,200)" in text
    assert "⛔ tool refused" in text
    assert "unknown\n · \naudit.recent\n: the person's role doesn't allow it" in text
    assert "🚫 request refused" in text and "teams:t1:u2\n · \naccount suspended" in text
    assert f"Latest signed checkpoint: 42 events · root {ROOT[:12]}…" in text
    [verify] = card["actions"]
    assert verify == {"type": "Action.Execute", "title": wording.VERIFY_BUTTON,
                      "verb": render.VERIFY_VERB}
    assert render.VERIFY_VERB == "tenantry.verify"


def test_an_admins_card_says_when_there_is_nothing_yet() -> None:
    empty = AdminStanding(shares=(), more_shares=False, incidents=(), checkpoint=None)
    text = shown(render.standing_card(standing(admin=empty)))

    for line in (wording.NO_PRINCIPALS, wording.NO_INCIDENTS, wording.NO_CHECKPOINT):
        assert line in text
    more = AdminStanding(shares=oversight().shares, more_shares=True, incidents=(),
                         checkpoint=None)
    assert wording.MORE_PRINCIPALS.format(count=2) in shown(render.standing_card(
        standing(admin=more)))


def test_a_verification_is_added_at_the_bottom() -> None:
    good = VerifyReport("acme", ok=True, size=42, root=ROOT, checkpoints_checked=3)
    bad = VerifyReport("acme", ok=False, size=1, root=ROOT, checkpoints_checked=0,
                       first_bad_seq=2, reason="event 2 <b>changed</b>")

    ok = render.standing_card(standing(admin=oversight()), verified=good)
    broken = render.standing_card(standing(admin=oversight()), verified=bad)

    assert shown({"body": ok["body"][-1:]}).startswith(
        f"✅ **Audit log verified:** 42 events, 3 signed checkpoints checked, root {ROOT[:12]}…")
    assert "Checked {{DATE(" in shown({"body": ok["body"][-1:]})
    assert "🚨 **Audit log does not verify** from event 2:\nevent 2 <b>changed</b>" in shown(
        {"body": broken["body"][-1:]})
    assert all("<b>" not in markdown for markdown in markdown_texts(broken))


def test_a_crowded_card_stays_within_teams_limit_and_keeps_the_verification() -> None:
    crowded = standing(admin=oversight(shares=300, incidents=300), runs=300)
    report = VerifyReport("acme", ok=True, size=42, root=ROOT, checkpoints_checked=3)

    card = render.standing_card(crowded, verified=report)

    assert cards.size(card) <= cards.MAX_CARD_BYTES
    assert render.LEFT_OUT in shown(card)
    assert "Audit log verified" in shown({"body": card["body"][-1:]})
    assert card["actions"][0]["verb"] == render.VERIFY_VERB
    assert render.LEFT_OUT not in shown(render.standing_card(standing(admin=oversight())))


def test_every_card_is_a_json_adaptive_card_of_version_1_5() -> None:
    report = VerifyReport("acme", ok=True, size=1, root=ROOT, checkpoints_checked=1)
    made = [
        render.halt_card("r1", {"ceiling": "tokens", "limit": 1, "used": 2}),
        render.halt_card("r1", {"ceiling": "monthly_tokens", "limit": 1, "used": 2}),
        render.halt_card("r1", {"ceiling": "unconfirmed_tool", "capability": "crm.refund"}),
        render.standing_card(standing()),
        render.standing_card(standing(admin=oversight(incidents=3)), verified=report),
        render.invoke_reply(render.resume_denied()),
    ]
    for card in made:
        assert json.loads(json.dumps(card)) == card
        assert (card["type"], card["version"], card["$schema"]) == (
            "AdaptiveCard", "1.5", "http://adaptivecards.io/schemas/adaptive-card.json")
        assert cards.size(card) <= cards.MAX_CARD_BYTES
