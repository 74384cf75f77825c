"""Jobs on the deployment's queue (PostgreSQL): claims, the queue, and each kind's handler.

Every module of this package is imported by ``tenantry worker`` before it starts, so
a module that calls ``register_job`` at import is all a new kind of job needs.
"""

from __future__ import annotations

import importlib
import pkgutil

from bots.jobs.claims import Claim, ClaimRefused
from bots.jobs.queue import JobQueue, QueuedJob, register_job

__all__ = ["Claim", "ClaimRefused", "JobQueue", "QueuedJob", "import_kinds", "register_job"]


def import_kinds() -> list[str]:
    """Import every module of this package, so each registers its kind of job."""
    names = [f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__)]
    for name in names:
        importlib.import_module(name)
    return names
