"""Structured logs that carry the tenant and run of the work that wrote them.

The tenant and run ids are bound in a ContextVar for log correlation only; code never
reads tenancy back from it (the ``TenantContext`` is passed explicitly).

Every line goes to stderr, ours and the libraries' alike (casbin, Bolt, aiohttp, the
Teams SDK), through the same structlog chain: JSON objects, or readable lines when a
person watches the terminal. Bolt's multi-line "[Suggestion]" advice about requests
Tenantry chose not to handle becomes one DEBUG line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal

import structlog

from core.context import TenantContext

_SECRET = re.compile(
    r"xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-[A-Za-z0-9_-]{8,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|PRIVATE\+KEY\+\S+|-----BEGIN[A-Z ]*PRIVATE KEY-----"
    r"|(?i:\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
)
_SECRET_FIELD = re.compile(
    r"(?i)((?:secret|token|password|api_key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"
)
"""Credentials as they show up in a library's debug lines: Slack, Anthropic and GitHub
tokens, JWTs, private keys, HTTP authorisations, and values of secret-named fields."""


def scrub(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[redacted]``."""
    return _SECRET_FIELD.sub(r"\1[redacted]", _SECRET.sub("[redacted]", text))


class _ScrubSecrets(logging.Filter):
    """Scrubs every record a library writes, at every level, before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def _scrub_rendered(_logger: Any, _name: str, line: Any) -> Any:
    """The last processor: the rendered JSON line, scrubbed."""
    return scrub(line) if isinstance(line, str) else line


LogFormat = Literal["auto", "json", "console"]
"""``auto``: JSON unless stderr is a terminal."""


def _renderer(log_format: LogFormat) -> Any:
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    if as_json:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def processors(log_format: LogFormat = "json") -> list[Any]:
    """Tenantry's structlog chain: context ids, level, time, rendering, then scrubbing."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _renderer(log_format),
        _scrub_rendered,
    ]


class _QuietBoltSuggestions(logging.Filter):
    """Bolt's advice on an unhandled request: its first line only, at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("slack_bolt"):
            return True
        message = record.getMessage()
        if "[Suggestion]" not in message and not message.startswith("Unhandled request"):
            return True
        record.msg, record.args = message.splitlines()[0], None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        # Not setStream: it flushes the previous stream, which may be closed by now.
        self.stream = sys.stderr
        super().emit(record)


def _scrubbed_traceback(_logger: Any, _name: str,
                        event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A library record's traceback, which ``_ScrubSecrets`` has turned into scrubbed text."""
    record = event.get("_record")
    if isinstance(record, logging.LogRecord) and record.exc_text:
        event.setdefault("exception", record.exc_text)
    return event


def _library_handler(log_format: LogFormat) -> logging.Handler:
    """A root handler that renders library records through Tenantry's chain."""
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrubbed_traceback,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(log_format),
            _scrub_rendered,
        ],
    ))
    handler.addFilter(_QuietBoltSuggestions())
    return handler


def scrub_library_logs() -> None:
    """Scrub credentials from every record of the standard logging's root handlers."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ScrubSecrets) for f in handler.filters):
            handler.addFilter(_ScrubSecrets())


def configure(level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """Send structlog and stdlib logging to stderr, one line per record.

    Every line, whoever writes it and at whatever level, is scrubbed of credentials
    first (slack_sdk, for one, logs the whole ``oauth.v2.access`` answer at DEBUG).
    Configuring again replaces the previous configuration: the CLI configures at its
    level, and ``tenantry demo`` must still be able to go quieter.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    root.addHandler(_library_handler(log_format))
    root.setLevel(level.upper())
    scrub_library_logs()
    for chatty in ("alembic", "casbin"):  # each prints its setup at INFO, every run for casbin
        logging.getLogger(chatty).setLevel(logging.WARNING)
    structlog.configure(
        processors=processors(log_format),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


@contextmanager
def bound(ctx: TenantContext) -> Iterator[None]:
    """Tag every log line written inside the block with the run's tenant and run ids."""
    with structlog.contextvars.bound_contextvars(**ctx.log_fields()):
        yield


log = structlog.get_logger("tenantry")
