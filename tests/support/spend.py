"""Many concurrent runs of one tenant, runnable in this process or in another one."""

from __future__ import annotations

import asyncio
import sys

from core.agent import AgentService, RunOutcome
from core.db.engine import Database
from core.errors import RunRefused
from core.logs import configure
from core.settings import Settings
from core.tools import CapabilityRegistry
from tests.support.auditing import audit_log
from tests.support.scripted import ScriptedModels, two_bumps
from tests.support.tenancy import CounterCapability


async def spend(url: str, tenant_id: str, runs: int) -> list[str]:
    """Start ``runs`` concurrent runs; return each one's status (or ``refused``)."""
    db = Database(url)
    settings = Settings(database_url=url, model="sandbox")
    svc = AgentService(db, settings, ScriptedModels(settings, two_bumps), audit_log(db),
                       CapabilityRegistry([CounterCapability()]))

    async def one() -> str:
        try:
            grant = await svc.open(tenant_id=tenant_id, principal_id="load",
                                   extra_roles={"member"})
        except RunRefused:
            return "refused"
        outcome: RunOutcome = await svc.start(grant, "bump it", model="sandbox")
        return outcome.status

    try:
        return list(await asyncio.gather(*(one() for _ in range(runs))))
    finally:
        await db.dispose()


if __name__ == "__main__":
    configure("WARNING")
    statuses = asyncio.run(spend(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    print(" ".join(statuses))
