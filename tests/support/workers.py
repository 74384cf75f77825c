"""Worker processes for tests: real OS processes running ``tests.support.worker_process``.

``Workers`` starts them against a test database and the Slack stand-in of a scenario,
kills them (SIGKILL) or stops them (SIGTERM), and reads back what they did: the runs,
the tool's effects file, and the runs' intervals from the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, text

from core.audit import events
from core.db.engine import Database
from core.db.schema import runs, usage_ledger
from core.settings import Settings
from standins.slack.api import SlackStandIn
from standins.slack.driver import CLIENT_ID, CLIENT_SECRET
from standins.slack.requests import SIGNING_SECRET
from tests.support.databases import fetch_all, fetch_value

ROOT = Path(__file__).resolve().parents[2]
FAST = {
    "TENANTRY_WORKER_HEARTBEAT_S": "0.5",
    "TENANTRY_WORKER_STALLED_AFTER_S": "2",
    "TENANTRY_WORKER_SWEEP_S": "0.5",
    "TENANTRY_WORKER_POLL_S": "0.2",
}
"""A dead worker found within about three seconds, not the production half minute."""


@dataclass
class Workers:
    """Worker processes of one test; ``stop_all`` ends what is still running."""

    settings: Settings
    effects: Path
    slack: SlackStandIn | None = None
    extra: dict[str, str] = field(default_factory=dict)
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        assert self.settings.job_key is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
        env |= {
            "TENANTRY_DATABASE_URL": self.settings.database_url,
            "TENANTRY_DATA_DIR": str(self.settings.data_dir),
            "TENANTRY_MODEL": "sandbox",
            "TENANTRY_EMBEDDER": "hashing",
            "TENANTRY_JOB_KEY": self.settings.job_key.get_secret_value(),
            "TENANTRY_CAPABILITY_MODULES": json.dumps(
                ["tests.support.worker_process:capabilities"]),
            "TENANTRY_WORKER_METRICS_PORT": "0",
            "TENANTRY_WORKER_CONCURRENCY": "4",
            "TEST_EFFECTS": str(self.effects),
            **FAST,
        }
        if self.slack is not None:
            env |= {"TENANTRY_SLACK_SIGNING_SECRET": SIGNING_SECRET,
                    "TENANTRY_SLACK_CLIENT_ID": CLIENT_ID,
                    "TENANTRY_SLACK_CLIENT_SECRET": CLIENT_SECRET,
                    "TENANTRY_SLACK_API_URL": self.slack.base_url}
        return env | self.extra

    async def spawn(self, **extra: str) -> asyncio.subprocess.Process:
        """Start one worker, without waiting for it to be ready."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.worker_process", cwd=ROOT,
            env=self.env() | extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        self.procs.append(proc)
        return proc

    async def start(self, count: int = 1, **extra: str) -> list[asyncio.subprocess.Process]:
        """Start ``count`` workers; return once the queue knows each of them."""
        db = Database(self.settings.database_url)
        try:
            before = await _newest(db)
            started = [await self.spawn(**extra) for _ in range(count)]
            for _ in range(600):
                if await _registered(db, after=before) >= count:
                    return started
                dead = [p for p in started if p.returncode is not None]
                if dead:
                    raise AssertionError(await _stderr(dead[0]))
                await asyncio.sleep(0.05)
            raise AssertionError("workers did not register within 30 s")
        finally:
            await db.dispose()

    async def busy(self, db: Database, rng: random.Random) -> asyncio.subprocess.Process | None:
        """A live worker that is executing a run: one whose tool ran lately (the effects
        file names the process), chosen at random among them; ``None`` once no run is
        left to execute."""
        for _ in range(600):
            alive = {p.pid: p for p in self.procs if p.returncode is None}
            lines = self.effects.read_text().splitlines() if self.effects.exists() else []
            recent = {int(line.split()[3]) for line in lines[-6:]} & set(alive)
            if recent:
                return alive[rng.choice(sorted(recent))]
            left = await fetch_value(db, select(func.count()).select_from(runs)
                                     .where(runs.c.status.in_(("queued", "running"))))
            if not left:
                return None
            await asyncio.sleep(0.05)
        raise AssertionError("no worker was executing a run")

    def kill(self, proc: asyncio.subprocess.Process) -> None:
        """kill -9."""
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)

    async def stop_all(self) -> None:
        """SIGTERM every worker still running, then wait for each."""
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                self.kill(proc)
                await proc.wait()
            if proc.stderr is not None:
                await proc.stderr.read()

    def effects_seen(self) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
        """Per ``(run, step)``: executions of the tool, and effects applied."""
        executed: Counter[tuple[str, str]] = Counter()
        applied: Counter[tuple[str, str]] = Counter()
        lines = self.effects.read_text().splitlines() if self.effects.exists() else []
        for line in lines:
            what, run, step, _pid = line.split()
            (executed if what == "exec" else applied)[(run, step)] += 1
        return executed, applied


async def _newest(db: Database) -> int:
    return int(await fetch_value(db, text("SELECT max(id) FROM procrastinate_workers")) or 0)


async def _registered(db: Database, *, after: int) -> int:
    """Workers registered since the one numbered ``after`` (a start prunes dead ones)."""
    return int(await fetch_value(db, text(
        "SELECT count(*) FROM procrastinate_workers WHERE id > :after").bindparams(
            after=after)) or 0)


async def _stderr(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    return (await proc.stderr.read()).decode()[-3000:]


async def wait_until_answered(db: Database, count: int, *, timeout_s: float = 60) -> None:
    """Until ``count`` runs have ended (or halted) and been delivered."""
    for _ in range(int(timeout_s * 10)):
        rows = await fetch_all(db, select(runs.c.status, runs.c.detail))
        answered = [r for r in rows if r.status not in ("queued", "running")
                    and (r.detail or {}).get("delivered")]
        if len(answered) >= count:
            return
        await asyncio.sleep(0.1)
    statuses = Counter(r.status for r in await fetch_all(db, select(runs.c.status)))
    raise AssertionError(f"runs not answered in {timeout_s} s: {dict(statuses)}")


async def most_at_once(db: Database, tenant_id: str) -> int:
    """The most runs of the tenant executing at one moment, from its audit log."""
    ends = (events.RUN_COMPLETED, events.RUN_HALTED)
    rows = await fetch_all(db, text(
        "SELECT run_id, event, time FROM audit_events WHERE tenant_id = :t "
        "AND run_id IS NOT NULL AND event IN ('run.started', 'run.completed', 'run.halted') "
        "ORDER BY time, seq").bindparams(t=tenant_id))
    running: set[str] = set()
    most = 0
    for row in rows:
        if row.event in ends:
            running.discard(row.run_id)
        else:
            running.add(row.run_id)
            most = max(most, len(running))
    return most


async def month_matches_ledger(db: Database, tenant_id: str) -> tuple[int, int]:
    """The month's tokens as charged, and as the sum of the ledger's rows."""
    month = await fetch_value(db, text(
        "SELECT tokens FROM monthly_usage WHERE tenant_id = :t").bindparams(t=tenant_id))
    ledger = await fetch_value(db, select(
        func.sum(usage_ledger.c.input_tokens + usage_ledger.c.output_tokens
                 + usage_ledger.c.cache_read_tokens + usage_ledger.c.cache_write_tokens))
        .where(usage_ledger.c.tenant_id == tenant_id))
    return int(month or 0), int(ledger or 0)
