"""How the playground shows Slack messages: readable text, stream state and buttons."""

from __future__ import annotations

from typing import Any

from bots.dev.shown import Button, block_texts, buttons_of, plain, shown
from standins.slack.api import SlackMessage


def message(**fields: Any) -> SlackMessage:
    base: dict[str, Any] = {"ts": "1.000002", "channel": "C1", "team_id": "T1",
                            "user": "UBOT", "bot_id": "B1", "text": ""}
    return SlackMessage(**(base | fields))


def test_slack_markup_reads_as_a_person_sees_it() -> None:
    assert plain("<@U0YOU> asked &lt;1% of <https://x.test|the plan> by "
                 "<!date^1796312281^{date_short_pretty}|3 Dec 2026>") == (
        "@U0YOU asked <1% of the plan by 3 Dec 2026")


def test_a_message_still_streaming_is_shown_as_such() -> None:
    streaming = shown(message(text="Here is", stream_state="streaming", thread_ts="1.000001"))
    stopped = shown(message(text="Here is all", stream_state="stopped"))

    assert (streaming.state, streaming.text, streaming.author) == ("streaming", "Here is", "app")
    assert stopped.state == "done"


def test_blocks_give_the_text_and_buttons_of_a_message_without_text() -> None:
    blocks = (
        {"type": "header", "text": {"type": "plain_text", "text": "Halted"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "limit &amp; used"},
         "accessory": {"type": "button", "action_id": "a1", "value": "v1",
                       "text": {"type": "plain_text", "text": "Open"}}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "run r1"}]},
        {"type": "actions", "elements": [
            {"type": "button", "action_id": "tenantry_resume", "value": "r1",
             "text": {"type": "plain_text", "text": "Resume"}},
            {"type": "static_select", "action_id": "pick"}]},
    )

    seen = shown(message(blocks=blocks, ephemeral_to="U0YOU"))

    assert seen.text == "Halted\nlimit & used\nrun r1"
    assert seen.author == "ack"
    assert seen.buttons == (Button("a1", "v1", "Open"), Button("tenantry_resume", "r1", "Resume"))
    assert block_texts(["not a block"]) == [] and buttons_of([None]) == []
