"""JSON logs that carry the tenant and run of the work that wrote them.

The tenant and run ids are bound in a ContextVar for log correlation only; code never
reads tenancy back from it (the ``TenantContext`` is passed explicitly).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


def processors() -> list[Any]:
    """Tenantry's structlog chain: context ids, level, time, JSON, then scrubbing."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
        _scrub_rendered,
    ]


def scrub_library_logs() -> None:
    """Scrub credentials from every record of the standard logging's root handlers."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ScrubSecrets) for f in handler.filters):
            handler.addFilter(_ScrubSecrets())


def configure(level: str = "INFO") -> None:
    """Send structlog and stdlib logging to stderr as one JSON object per line.

    Every line, whoever writes it and at whatever level, is scrubbed of credentials
    first (slack_sdk, for one, logs the whole ``oauth.v2.access`` answer at DEBUG).
    """
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    # basicConfig leaves a root that already has a handler alone, level included: the
    # CLI configures at its level, and `tenantry demo` must still be able to go quieter.
    logging.getLogger().setLevel(level.upper())
    scrub_library_logs()
    for chatty in ("alembic", "casbin"):  # each prints its setup at INFO, every run for casbin
        logging.getLogger(chatty).setLevel(logging.WARNING)
    structlog.configure(
        processors=processors(),
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
