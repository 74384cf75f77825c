"""Export of a tenant's log as one JSON file, and its verification offline.

A bundle holds every event up to the head, every signed checkpoint and every
verifier key they need, so an auditor can check it without the database or
Tenantry's good faith, with any RFC 6962 implementation (docs/audit.md). Each event
carries the exact text its leaf was hashed from (``leaf_input``: the leaf hash is
SHA-256 of a 0x00 byte and its UTF-8 bytes). The keys inside the bundle only prove
the bundle is self-consistent; an auditor who wants to know it came from this
deployment pins the keys it published (``verify_bundle(path, verifier_keys=...)``).

Layout (keys in this order; ``events`` last, so it can be streamed)::

    {"format": "tenantry.audit.bundle/2", "tenant_id": ..., "origin": ...,
     "verifier_keys": [...], "exported_at": ..., "head": {"size": n, "root": hex},
     "checkpoints": [{"size", "root", "note", "created_at"}, ...],
     "events": [{"tenant_id", "seq", "run_id", "event", "time", "fields", "leaf_input",
                 "leaf_hash"}, ...]}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from core.audit.events import AuditError, canonical_bytes, canonical_json, utc_now
from core.audit.store import event_batches, read_checkpoints, read_head
from core.audit.verify import EventRow, LogChecker, StoredCheckpoint, VerifyReport
from core.db.engine import Database
from core.merkle import CompactRange
from core.signed_note import NoteError, parse_verifier_key

FORMAT = "tenantry.audit.bundle/2"
FORMATS = ("tenantry.audit.bundle/1", FORMAT)
"""Formats a bundle may have; version 1 had one verifier key and no leaf inputs."""


async def write_bundle(
    db: Database, tenant_id: str, origin: str, verifier_keys: list[str], path: Path
) -> None:
    """Write the tenant's log up to its current head to ``path``, atomically.

    Events appended during the export are left out: the bundle is the log as of
    the head read first, which is what its ``head`` claims.
    """
    head = await db.run(read_head, tenant_id) or CompactRange()
    checkpoints = await db.run(read_checkpoints, tenant_id)
    header = {
        "format": FORMAT,
        "tenant_id": tenant_id,
        "origin": origin,
        "verifier_keys": verifier_keys,
        "exported_at": utc_now(),
        "head": {"size": head.size, "root": head.root().hex()},
        "checkpoints": [
            {"size": c.size, "root": c.root, "note": c.note, "created_at": c.created_at}
            for c in checkpoints
        ],
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(header, ensure_ascii=False)[:-1] + ',"events":[')
            first = True
            async for batch in event_batches(db, tenant_id, upto=head.size):
                await asyncio.to_thread(_write_events, handle, tenant_id, batch, first)
                first = False
            handle.write("]}\n")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_events(handle: IO[str], tenant_id: str, batch: list[EventRow], first: bool) -> None:
    parts = []
    for seq, run_id, event, time, fields_json, stored_leaf in batch:
        try:
            fields: Any = json.loads(fields_json)
        except ValueError:
            fields = fields_json
        leaf_input = canonical_bytes(tenant_id, seq, run_id, event, time, fields_json)
        parts.append(json.dumps(
            {"tenant_id": tenant_id, "seq": seq, "run_id": run_id, "event": event,
             "time": time, "fields": fields, "leaf_input": leaf_input.decode("utf-8"),
             "leaf_hash": stored_leaf},
            ensure_ascii=False,
        ))
    handle.write(("" if first else ",") + ",".join(parts))


def verify_bundle(path: Path, *, verifier_keys: list[str] | None = None) -> VerifyReport:
    """Check an exported bundle offline, exactly as ``AuditLog.verify`` checks a live log.

    Args:
        path: The bundle file.
        verifier_keys: The deployment's published verifier keys; when given, only
            checkpoints signed by one of them count, whatever keys the bundle names.

    Raises:
        AuditError: The file cannot be read or is not a bundle, or a key is invalid.
    """
    try:
        pinned = None if verifier_keys is None else [parse_verifier_key(k) for k in verifier_keys]
    except NoteError as error:
        raise AuditError(f"invalid verifier key: {error}") from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AuditError(f"cannot read audit bundle {path}: {error}") from None
    try:
        if data["format"] not in FORMATS:
            raise AuditError(f"{path} is not a {FORMAT} bundle (format {data['format']!r})")
        tenant_id = _str(data["tenant_id"])
        origin = _str(data["origin"])
        if not origin.endswith(f"/tenants/{tenant_id}"):
            raise AuditError(f"bundle origin {origin!r} is not tenant {tenant_id!r}'s log")
        named = data.get("verifier_keys") or [data["verifier_key"]]
        verifiers = pinned or [parse_verifier_key(_str(key)) for key in named]
        checkpoints = [
            StoredCheckpoint(tenant_id, _int(c["size"]), _str(c["root"]), _str(c["note"]),
                             _str(c.get("created_at", "")))
            for c in data["checkpoints"]
        ]
        rows: list[EventRow] = [
            (_int(e["seq"]), _optional_str(e["run_id"]), _str(e["event"]), _str(e["time"]),
             canonical_json(e["fields"]) if isinstance(e["fields"], dict) else str(e["fields"]),
             _str(e["leaf_hash"]))
            for e in data["events"]
        ]
        head_size = _int(data["head"]["size"])
        head_root = bytes.fromhex(_str(data["head"]["root"]))
    except (KeyError, TypeError, ValueError, NoteError) as error:
        raise AuditError(f"malformed audit bundle {path}: {error!r}") from None
    checker = LogChecker(tenant_id, origin, verifiers, checkpoints)
    checker.feed(rows)
    return checker.finish(head_size, head_root)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _optional_str(value: Any) -> str | None:
    return None if value is None else _str(value)
