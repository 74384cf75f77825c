"""What the benchmarks share: the percentile they report, the batches of an
acknowledgement benchmark and how they are printed, and a scratch PostgreSQL database
for those that run on it.

The scripts run as ``python benchmarks/<name>.py``, so this module is imported by its
own name (``from figures import percentile``), from the scripts' directory.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection

import aiohttp
import psycopg
from sqlalchemy.engine import make_url


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(frozen=True, slots=True)
class Batch:
    """The answer times of one batch, in milliseconds.

    Attributes:
        failures: Answers other than the one expected (200 from Slack's, 202 from Teams').
        waits: Per request, from its answer to its run's start (tenantry only).
        first_start: From the last answer to the first run's start.
    """

    p50: float
    p99: float
    failures: int
    waits: tuple[float, ...] = ()
    first_start: float | None = None


def report(name: str, level: int, batches: list[Batch]) -> tuple[float, float]:
    """Print one side's figures at one level; the medians of its p50s and p99s."""
    p50 = statistics.median(b.p50 for b in batches)
    p99 = statistics.median(b.p99 for b in batches)
    failures = sum(b.failures for b in batches)
    each = ", ".join(f"{b.p50:.1f}/{b.p99:.1f}" for b in batches)
    print(f"  {name:<9} N={level:<4} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
          f"  (batches p50/p99: {each}; failed: {failures})")
    return p50, p99


def report_waits(level: int, batches: list[Batch]) -> None:
    """Print how long the level's runs waited after their answers."""
    waits = [wait for b in batches for wait in b.waits]
    firsts = [b.first_start for b in batches if b.first_start is not None]
    if not waits or not firsts:
        return
    print(f"  run start N={level:<4} after its answer: median {statistics.median(waits):.0f}"
          f" ms, max {max(waits):.0f} ms ({len(waits)} runs); first run after the last"
          f" answer: {', '.join(f'{first:.0f}' for first in firsts)} ms")


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


KEEPALIVE_S = 600
"""How long the client keeps an idle connection: longer than the whole benchmark, where
aiohttp's default (15 s) would close the warm-up's connections before the last level."""


async def one(session: aiohttp.ClientSession, url: str, body: bytes,
              headers: dict[str, str]) -> tuple[float, int, float]:
    """Post one request; milliseconds until its response was read, its status, and when.

    The last is wall-clock time (``time.time()``), comparable with the server's
    timestamps: client and server run on the same machine.
    """
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        await resp.read()
        return (time.perf_counter() - started) * 1000, resp.status, time.time()


async def client_loop(conn: Connection, limit: int) -> None:
    """Serve batches sent by the parent until it sends ``None``; answer their timings."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0,
                                     keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector) as session:
        while (job := await loop.run_in_executor(None, conn.recv)) is not None:
            url, requests = job
            conn.send(await asyncio.gather(*(one(session, url, body, headers)
                                             for body, headers in requests)))


def create_database(server_url: str) -> str:
    """A new, empty database on the PostgreSQL server of ``server_url``; its URL."""
    name = f"tenantry_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return make_url(server_url).set(drivername="postgresql+psycopg", database=name
                                    ).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    """Drop the database ``create_database`` made, whoever is still connected."""
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        name = make_url(url).database
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new database on ``server_url``'s server for as long as the context lasts."""
    url = create_database(server_url)
    try:
        yield url
    finally:
        drop_database(server_url, url)
