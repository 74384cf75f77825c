"""Getting the answer into Slack: rate limits, streams, and streams that end too early."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bots.slack import render
from bots.slack.answer_message import FLUSH_CHARS
from core.runs import RunRecord
from core.settings import Settings
from standins.slack.api import SlackMessage, SlackStandIn, SlackUser
from tests.scenarios.harness import (
    APP_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    Scenario,
    open_scenario,
    runs_of,
    thread,
)

ADA = SlackUser("U1ADA")
LONG = "Please compare these options in detail: " + "option alpha, option beta; " * 16


async def answered_mention(scenario: Scenario, text: str) -> tuple[SlackMessage, RunRecord]:
    """Ada mentions the app with ``text`` in acme's workspace T1: its one answer and run."""
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    mention = await scenario.mention(t1, ADA.id, text)
    await scenario.idle()
    [answer] = thread(scenario.slack, t1.channel, mention)
    [run] = await runs_of(scenario, "acme")
    return answer, run


async def test_a_rate_limited_post_is_retried_and_posted_once(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    scenario.slack.fail_next("chat.postMessage", "ratelimited", retry_after=1)

    sent = await scenario.command(t1, ADA.id, "what changed?")
    await scenario.idle()

    assert sent.status == 200 and sent.elapsed < 1.0
    posts = scenario.slack.calls("chat.postMessage")
    assert [c.status for c in posts] == [429, 200]
    assert posts[1].at - posts[0].at >= 1.0, "Retry-After was honoured"
    [root] = [m for m in scenario.slack.messages(t1.channel) if m.thread_ts is None]
    [answer] = thread(scenario.slack, t1.channel, root.ts)
    [run] = await runs_of(scenario, "acme")
    assert answer.text == run.answer


async def test_a_rate_limited_stream_append_is_retried(scenario: Scenario) -> None:
    scenario.slack.fail_next("chat.appendStream", "ratelimited", retry_after=1)
    answer, run = await answered_mention(scenario, "hello")
    assert answer.text == run.answer
    assert answer.stream_state == "stopped"


class ExpiresAfterFirstAppend:
    """A stand-in clock that jumps past the stream timeout once an append has landed.

    Slack ends a stream on its side when appends stop coming for a while; jumping the
    clock right after the first append makes the next one arrive "too late".
    """

    def __init__(self) -> None:
        self.slack: SlackStandIn | None = None

    def __call__(self) -> float:
        late = self.slack is not None and bool(self.slack.calls("chat.appendStream"))
        return time.monotonic() + (3600.0 if late else 0.0)


@pytest.fixture
async def expiring(settings: Settings) -> AsyncIterator[Scenario]:
    clock = ExpiresAfterFirstAppend()
    slack = SlackStandIn(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, app_id=APP_ID,
                         stream_idle_timeout=30.0, clock=clock)
    clock.slack = slack
    async with open_scenario(settings, slack) as running:
        yield running


async def test_a_stream_that_expires_mid_answer_ends_complete_in_one_message(
    expiring: Scenario,
) -> None:
    answer, run = await answered_mention(expiring, LONG)
    assert run.answer is not None and len(run.answer) > 400
    assert answer.text == run.answer
    assert answer.stream_state == "expired" and answer.edited
    appends = expiring.slack.calls("chat.appendStream")
    assert [c.error for c in appends] == [None, "message_not_in_streaming_state"]
    [update] = expiring.slack.calls("chat.update")
    assert update.params["ts"] == answer.ts
    assert expiring.slack.calls("chat.postMessage") == []


async def test_a_long_answer_streams_in_pieces(scenario: Scenario) -> None:
    answer, run = await answered_mention(scenario, LONG)
    assert run.answer is not None and answer.text == run.answer
    appended = [c.params["chunks"][0]["text"] for c in scenario.slack.calls("chat.appendStream")
                if c.params["chunks"][0]["type"] == "markdown_text"]
    assert len(appended) >= 4 and "".join(appended) == run.answer
    assert all(len(piece) < 2 * FLUSH_CHARS for piece in appended)
    statuses = [c["status"] for c in answer.chunks if c["type"] == "task_update"]
    assert statuses == ["in_progress", "complete"]


async def test_a_stream_that_cannot_start_falls_back_to_a_posted_message(
    scenario: Scenario,
) -> None:
    scenario.slack.fail_next("chat.startStream", "not_allowed_token_type")
    answer, run = await answered_mention(scenario, "hello")
    assert answer.text == run.answer and answer.edited
    assert [c.params["text"] for c in scenario.slack.calls("chat.postMessage")] == [
        render.ANSWER_PENDING]


async def test_a_stream_that_cannot_stop_is_finished_by_an_edit(scenario: Scenario) -> None:
    scenario.slack.fail_next("chat.stopStream", "internal_error")
    answer, run = await answered_mention(scenario, "hello")
    assert answer.text == run.answer
    assert len(scenario.slack.calls("chat.update")) == 1


async def test_the_status_line_names_each_tool_while_it_runs(scenario: Scenario) -> None:
    answer, run = await answered_mention(scenario, "how much is left? check budget.status")
    updates = [(c["title"], c["status"]) for c in answer.chunks if c["type"] == "task_update"]
    assert updates == [
        (render.STATUS_WORKING, "in_progress"),
        (render.status_using("budget.status"), "in_progress"),
        (render.STATUS_DONE["completed"], "complete"),
    ]
    assert run.tool_calls == 1 and answer.text == run.answer


async def test_a_status_line_slack_refuses_does_not_stop_the_answer(scenario: Scenario) -> None:
    scenario.slack.fail_next("chat.appendStream", "internal_error")
    answer, run = await answered_mention(scenario, "check budget.status")
    assert run.status == "completed" and run.tool_calls == 1
    assert answer.text == run.answer
