"""A real ``tenantry worker`` process (``bots.worker.work``) with a scripted, slow model.

Configured, as a deployment is, by ``TENANTRY_*`` variables; besides them:

- ``TEST_MODEL_DELAY_S``: how long each model call takes (the model bumps a counter
  twice, then answers: three model calls, two tool calls per run);
- ``TEST_EFFECTS``: a file the ``counter.bump`` tool appends to. A tool of a real
  service carries an idempotency key; this one's key is ``(run_id, step_id)``: every
  execution is written as ``exec <run> <step> <pid>``, and only the first of a key
  as ``apply <run> <step> <pid>``, so the file shows executions repeated by a resume
  apart from effects applied twice (which must never happen).

    python -m tests.support.worker_process
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic_ai import RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse

import bots.runtime
from bots.worker import work
from core.context import TenantContext
from core.db.engine import Database
from core.logs import configure
from core.settings import Settings
from core.tools import ToolBinding, ToolCapability
from core.toolset import tool_step_id
from tests.support.scripted import ScriptedModels, two_bumps


class EffectCounter:
    """``counter.bump`` whose effect lands in a file, once per ``(run_id, step_id)``."""

    name = "counter.bump"
    description = "Bump the tenant's counter by `by` and return the new value."
    cost_microcents = 1_000

    def __init__(self, path: Path) -> None:
        self.path = path

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        return ToolBinding(capability=self.name, description=self.description,
                           function=self.bump, cost_microcents=self.cost_microcents)

    async def bump(self, ctx: RunContext[TenantContext], by: int) -> int:
        """Bump the counter."""
        run, step = ctx.deps.run_id, tool_step_id(ctx.tool_call_id)
        await asyncio.to_thread(self._write, run, step)
        return by

    def _write(self, run: str, step: str) -> None:
        done = self.path.read_text() if self.path.exists() else ""
        lines = [f"exec {run} {step} {os.getpid()}"]
        if f"apply {run} {step} " not in done:
            lines.append(f"apply {run} {step} {os.getpid()}")
        with self.path.open("a") as out:
            out.write("".join(line + "\n" for line in lines))


def capabilities(settings: Settings, db: Database) -> Iterable[ToolCapability]:
    """The ``capability_modules`` factory of the test worker."""
    return [EffectCounter(Path(os.environ["TEST_EFFECTS"]))]


async def slow_bumps(messages: list[ModelMessage], info: object) -> ModelResponse:
    await asyncio.sleep(float(os.environ.get("TEST_MODEL_DELAY_S", "0.1")))
    return two_bumps(messages, info)  # type: ignore[arg-type]


def _models(settings: Settings) -> ScriptedModels:
    return ScriptedModels(settings, slow_bumps)


if __name__ == "__main__":
    configure(os.environ.get("TENANTRY_LOG_LEVEL", "WARNING"))
    bots.runtime.ModelFactory = _models  # type: ignore[attr-defined,assignment]
    asyncio.run(work(Settings()))
