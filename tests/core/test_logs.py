"""Logs carry tenant and run ids, and never a credential, whoever writes them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from core.logs import LogFormat, configure, processors, scrub, scrub_library_logs

BOT_TOKEN = "xoxb-1111-2222-LoggedByADebugLine"
BODY = json.dumps({"ok": True, "access_token": BOT_TOKEN, "client_secret": "s3cr3t-v4lue",
                   "authed_user": {"access_token": "xoxp-3333-4444-user"}})


def test_a_library_debug_line_with_tokens_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    scrub_library_logs()
    slack_sdk = logging.getLogger("slack_sdk.web.async_base_client")
    slack_sdk.debug("Received the following response: %s", BODY)
    logging.getLogger("aiohttp.client").debug("headers: Authorization: Bearer abcdefghijklmnop")
    text = caplog.text
    assert "Received the following response" in text and '"ok": true' in text
    for secret in (BOT_TOKEN, "xoxp-3333", "s3cr3t-v4lue", "abcdefghijklmnop"):
        assert secret not in text


def test_our_own_lines_are_scrubbed_too() -> None:
    sink = io.StringIO()
    log = structlog.wrap_logger(structlog.PrintLogger(sink), processors=processors(),
                                wrapper_class=structlog.make_filtering_bound_logger(0))
    log.debug("installation stored", bot_token=BOT_TOKEN, team_id="T1")
    line = json.loads(sink.getvalue())
    assert line["team_id"] == "T1" and BOT_TOKEN not in json.dumps(line)


def test_ordinary_figures_are_left_alone() -> None:
    text = "run finished tokens_in=500 token_ceiling=4000 cost=$0.0012"
    assert scrub(text) == text


def test_casbin_does_not_print_its_model_on_every_run() -> None:
    try:
        configure("INFO")
        assert not logging.getLogger("casbin.model").isEnabledFor(logging.INFO)
        assert logging.getLogger("casbin.model").isEnabledFor(logging.WARNING)
    finally:
        structlog.reset_defaults()


def test_configuring_again_sets_the_level_of_library_lines() -> None:
    root = logging.getLogger()
    level = root.level
    try:
        sdk = logging.getLogger("microsoft_agents.hosting.core.connector.client")
        configure("INFO")  # as the CLI does, before `tenantry demo` asks for WARNING
        assert sdk.isEnabledFor(logging.INFO)
        configure("WARNING")
        assert not sdk.isEnabledFor(logging.INFO)
        assert sdk.isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(level)
        structlog.reset_defaults()


def _configured(capsys: pytest.CaptureFixture[str], log_format: LogFormat,
                level: str = "INFO") -> None:
    configure(level, log_format)
    capsys.readouterr()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_a_library_traceback_is_one_json_line_on_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    _configured(capsys, "json")
    try:
        raise ValueError(f"bad header with {BOT_TOKEN}")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")

    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["event"] == "Error handling request" and line["level"] == "error"
    assert line["logger"] == "aiohttp.server"
    assert "ValueError: bad header" in line["exception"] and BOT_TOKEN not in lines[0]


@pytest.mark.usefixtures("restore_logging")
def test_bolt_suggestions_are_one_debug_line(capsys: pytest.CaptureFixture[str]) -> None:
    bolt = logging.getLogger("slack_bolt.AsyncApp")
    advice = ('Unhandled request ({"type": "event_callback"})\n---\n[Suggestion] You can '
              "handle this type of event with the following listener function:\n\n"
              "@app.event(\"app_mention\")\nasync def handle(body, logger): ...\n")
    _configured(capsys, "json")
    bolt.warning(advice)
    assert capsys.readouterr().err == ""

    _configured(capsys, "json", "DEBUG")
    bolt.warning(advice)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "debug"
    assert line["event"] == 'Unhandled request ({"type": "event_callback"})'


@pytest.mark.usefixtures("restore_logging")
def test_logs_are_json_unless_a_person_watches_or_asks_otherwise(
        capsys: pytest.CaptureFixture[str]) -> None:
    _configured(capsys, "auto")  # stderr is captured here: not a terminal
    logging.getLogger("aiohttp.web").warning("client went away")
    assert json.loads(capsys.readouterr().err)["event"] == "client went away"

    _configured(capsys, "console")
    logging.getLogger("aiohttp.web").warning("client went away")
    text = capsys.readouterr().err
    assert "client went away" in text and not text.startswith("{")
