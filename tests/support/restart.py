"""A process restarting: it resumes every unfinished run it can lease, as ``serve`` does.

Given a folder, it waits there at a barrier (``ready-<pid>`` written, ``go`` awaited)
between reading the unfinished runs and resuming them, so that two such processes
really resume at the same time; each model call takes a few milliseconds, so their
runs overlap.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo

from core.agent import AgentService
from core.db.engine import Database
from core.errors import Conflict
from core.logs import configure
from core.runs import unfinished_runs
from core.settings import Settings
from core.tools import CapabilityRegistry
from tests.support.auditing import audit_log
from tests.support.scripted import ScriptedModels, two_bumps
from tests.support.tenancy import CounterCapability


async def slow_bumps(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    await asyncio.sleep(0.02)
    return two_bumps(messages, info)


async def barrier(folder: Path) -> None:
    await asyncio.to_thread((folder / f"ready-{os.getpid()}").touch)
    for _ in range(3000):
        if await asyncio.to_thread((folder / "go").exists):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("nobody said go")


async def resume_all(url: str, folder: Path | None = None) -> list[str]:
    """Resume what this process can lease; the ids of the runs it executed."""
    db = Database(url)
    settings = Settings(database_url=url, model="sandbox")
    svc = AgentService(db, settings, ScriptedModels(settings, slow_bumps), audit_log(db),
                       CapabilityRegistry([CounterCapability()]))

    async def one(tenant_id: str, run_id: str) -> str | None:
        try:
            outcome = await svc.resume(await svc.reopen(tenant_id, run_id))
        except Conflict:
            return None
        return outcome.run_id

    try:
        records = await db.run(unfinished_runs)
        if folder is not None:
            await barrier(folder)
        done = await asyncio.gather(*(one(r.tenant_id, r.id) for r in records))
        return [run_id for run_id in done if run_id is not None]
    finally:
        await db.dispose()


if __name__ == "__main__":
    configure("WARNING")
    folder = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    print(" ".join(asyncio.run(resume_all(sys.argv[1], folder))))
