"""Benchmark of the audit log: appends per tenant, proof checks, a 1M-event verification.

Each figure is a median over several rounds and comes with a baseline measured in
the same run on the same database, so the ratio shows what the audit log adds:

- appends/s per tenant (PostgreSQL and SQLite), against plain one-row INSERT
  transactions into a table of the same shape; target >= 2,000/s on PostgreSQL;
- inclusion-proof verification, against hashing the same number of nodes by hand;
  target < 1 ms;
- full verification of a 1,000,000-event log (rows bulk-inserted, precomputed),
  against only reading the same rows; target < 30 s.

PostgreSQL comes from ``--database-url`` or ``TENANTRY_TEST_DATABASE_URL`` (a server
URL); the benchmark creates its own database there and drops it afterwards.

    .venv/bin/python benchmarks/audit.py [--database-url URL] [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

from figures import scratch_database
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text
from sqlalchemy.engine import Connection

from core.audit.events import TOOL_INVOKED, canonical_bytes, canonical_json
from core.audit.log import AuditLog
from core.audit.store import encode_range, event_batches
from core.audit.tables import audit_checkpoints, audit_events, audit_heads
from core.db.engine import Database
from core.db.migrate import upgrade
from core.merkle import CompactRange, leaf_hash
from core.signed_note import format_checkpoint, generate_key, parse_signer_key, sign_note

_plain = Table(
    "bench_plain_events", MetaData(),
    Column("tenant_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("run_id", String(36)), Column("event", String(64), nullable=False),
    Column("time", String(32), nullable=False), Column("fields", Text, nullable=False),
    Column("leaf_hash", String(64), nullable=False),
)
FIELDS = {"capability": "crm.lookup", "arguments": {"account": "ACME-42", "limit": 5},
          "result_digest": "ab" * 32, "duration_ms": 184, "outcome": "ok"}


def median_of(samples: list[float]) -> float:
    return statistics.median(samples)


async def timed(func: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await func()
    return time.perf_counter() - start


async def bench_appends(db: Database, log: AuditLog, label: str, count: int, rounds: int,
                        workers: int) -> None:
    await db.run(_plain.metadata.create_all)
    row = {"run_id": str(uuid.uuid4()), "event": TOOL_INVOKED, "time": "2026-01-01T00:00:00Z",
           "fields": canonical_json(FIELDS), "leaf_hash": "00" * 32}

    async def audit_round(tenant: str) -> None:
        async def worker(n: int) -> None:
            for _ in range(n):
                await log.record(tenant, TOOL_INVOKED, FIELDS, run_id=row["run_id"])
        await asyncio.gather(*(worker(count // workers) for _ in range(workers)))

    def insert_plain(conn: Connection, values: dict[str, object]) -> None:
        conn.execute(_plain.insert(), values)

    async def plain_round(tenant: str) -> None:
        seqs = iter(range(1, count + 1))

        async def worker(n: int) -> None:
            for _ in range(n):
                values = {"tenant_id": tenant, "seq": next(seqs), **row}
                await db.run(insert_plain, values)
        await asyncio.gather(*(worker(count // workers) for _ in range(workers)))

    audit: list[float] = []
    plain: list[float] = []
    for index in range(rounds):
        plain.append(count / await timed(partial(plain_round, f"plain-{workers}-{index}")))
        audit.append(count / await timed(partial(audit_round, f"bench-{workers}-{index}")))
    print(f"{label:<10} appends/s per tenant, {workers:>2} writer(s): "
          f"median {median_of(audit):8.0f}  (plain INSERT baseline {median_of(plain):8.0f}, "
          f"ratio {median_of(audit) / median_of(plain):.2f})")


def make_rows(tenant: str, events: int) -> tuple[list[tuple[object, ...]], dict[int, CompactRange]]:
    """Precomputed events and the tree state at a few checkpoint sizes."""
    tree = CompactRange()
    marks = {events // 4, events // 2, events}
    states: dict[int, CompactRange] = {}
    rows: list[tuple[object, ...]] = []
    fields_json = canonical_json(FIELDS)
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for seq in range(1, events + 1):
        run_id = f"01890000-0000-7000-8000-{seq // 8:012d}"
        moment = datetime.fromtimestamp(base + seq / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        leaf = leaf_hash(canonical_bytes(tenant, seq, run_id, TOOL_INVOKED, moment, fields_json))
        tree.append(leaf)
        rows.append((tenant, seq, run_id, TOOL_INVOKED, moment, fields_json, leaf.hex()))
        if seq in marks:
            states[seq] = CompactRange(tree.size, tree.hashes)
    return rows, states


async def bulk_load(db: Database, log: AuditLog, signer_key: str, tenant: str,
                    events: int) -> None:
    rows, states = await asyncio.to_thread(make_rows, tenant, events)
    columns = [c.name for c in audit_events.columns]

    def load(conn: Connection) -> None:
        if db.is_sqlite:
            dicts = [dict(zip(columns, r, strict=True)) for r in rows]
            for start in range(0, len(dicts), 50_000):
                conn.execute(audit_events.insert(), dicts[start:start + 50_000])
            return
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(
            f"COPY audit_events ({', '.join(columns)}) FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row(r)

    now = datetime.now(UTC)

    def heads(conn: Connection) -> None:
        tree = states[events]
        conn.execute(audit_heads.insert().values(
            tenant_id=tenant, size=events, compact_range=encode_range(tree), updated_at=now))
        for size, state in sorted(states.items()):
            note = sign_note(format_checkpoint(log.origin(tenant), size, state.root()),
                             log.signer_for(tenant))
            conn.execute(audit_checkpoints.insert().values(
                tenant_id=tenant, size=size, root=state.root().hex(), note=note,
                compact_range=encode_range(state), created_at=now))

    await db.run(load)
    await db.run(heads)


async def bench_verify(db: Database, log: AuditLog, signer_key: str, label: str, events: int,
                       rounds: int) -> None:
    tenant = "bulk"
    start = time.perf_counter()
    await bulk_load(db, log, signer_key, tenant, events)
    print(f"{label:<10} bulk-loaded {events:,} events in {time.perf_counter() - start:.1f} s")

    async def read_only() -> None:
        async for _batch in event_batches(db, tenant):
            pass

    report = await log.verify(tenant)
    assert report.ok and report.size == events and report.checkpoints_checked == 3, report
    verify_times: list[float] = []
    read_times: list[float] = []
    for _ in range(rounds):
        read_times.append(await timed(read_only))
        verify_times.append(await timed(partial(log.verify, tenant)))
    print(f"{label:<10} verify {events:,} events: median {median_of(verify_times):6.2f} s "
          f"(read-only baseline {median_of(read_times):6.2f} s, "
          f"ratio {median_of(verify_times) / median_of(read_times):.2f}); target < 30 s")

    proof = await log.inclusion_proof(tenant, random.randint(1, events))
    verifier = log.verifiers_for(tenant)[0]
    samples, signed, baseline = [], [], []
    for _ in range(1001):
        t0 = time.perf_counter()
        proof.verify()
        t1 = time.perf_counter()
        proof.verify(verifier)
        t2 = time.perf_counter()
        node = b"\x00" * 32
        for _sibling in range(len(proof.proof) + 1):
            node = hashlib.sha256(b"\x01" + node + node).digest()
        t3 = time.perf_counter()
        samples.append(t1 - t0)
        signed.append(t2 - t1)
        baseline.append(t3 - t2)
    print(f"{label:<10} inclusion proof in {proof.tree_size:,} ({len(proof.proof)} hashes): "
          f"verify median {median_of(samples) * 1e6:6.1f} us, with checkpoint signature "
          f"{median_of(signed) * 1e6:6.1f} us (raw hashing baseline "
          f"{median_of(baseline) * 1e6:5.1f} us, "
          f"ratio {median_of(samples) / median_of(baseline):.1f}); target < 1 ms")


async def run(url: str, label: str, args: argparse.Namespace) -> None:
    db = Database(url)
    try:
        await upgrade(db)
        signer_key = generate_key("tenantry-audit")[0]
        log = AuditLog(db, parse_signer_key(signer_key))
        for workers in (1, 8, 32):
            await bench_appends(db, log, label, args.appends, args.rounds, workers)
        if args.events:
            await bench_verify(db, log, signer_key, label, args.events, args.verify_rounds)
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TENANTRY_TEST_DATABASE_URL"),
                        help="PostgreSQL server URL (default: TENANTRY_TEST_DATABASE_URL)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2_000, help="appends per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--verify-rounds", type=int, default=3)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    if args.database_url:
        with scratch_database(args.database_url) as url:
            asyncio.run(run(url, "postgresql", args))
    else:
        print("postgresql skipped: no --database-url and no TENANTRY_TEST_DATABASE_URL")
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(run(f"sqlite:///{folder}/bench.db", "sqlite", args))


if __name__ == "__main__":
    main()
