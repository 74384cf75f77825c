"""JSON logs that carry the tenant and run of the work that wrote them.

The tenant and run ids are bound in a ContextVar for log correlation only; code never
reads tenancy back from it (the ``TenantContext`` is passed explicitly).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from core.context import TenantContext


def configure(level: str = "INFO") -> None:
    """Send structlog and stdlib logging to stderr as one JSON object per line."""
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
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
