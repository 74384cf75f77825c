"""``AuditLog``: the per-tenant, append-only, verifiable log of what agent runs did.

Events are written by ``core.audit.append``. With ``AuditLog.append`` they are written in
the caller's transaction, so an event exists exactly when the work it records was
committed. Checkpoints, verification, proofs and export read the log back
(``verify``, ``bundle``, ``store``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from pydantic_core import to_json
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from core.audit.append import GroupCommit, append_entries, prepare, require_id
from core.audit.bundle import write_bundle
from core.audit.events import AuditError, AuditEvent
from core.audit.store import (
    decode_range,
    event_batches,
    feed_batches,
    read_checkpoints,
    read_head,
    read_latest_checkpoint,
    store_checkpoint,
    stored_leaves,
)
from core.audit.tables import audit_events, audit_heads, audit_salts
from core.audit.verify import InclusionProof, LogChecker, StoredCheckpoint, VerifyReport
from core.db.engine import Database, dialect_insert, reads
from core.db.schema import tenants
from core.errors import NotFound
from core.merkle import CompactRange, inclusion_proof, root_from_leaf_hashes
from core.signed_note import (
    Signer,
    Verifier,
    format_checkpoint,
    format_verifier_key,
    sign_note,
)


class AuditLog:
    """The audit log of every tenant, written by the agent loop, read by operators.

    Each tenant's checkpoints are signed under a key name equal to its log's origin
    (C2SP tlog-checkpoint): the newest key's material under that name signs, and every
    key, retired ones included, verifies under that name and under the name it was
    created with (checkpoints signed before keys were named for their log).

    Args:
        db: The app database (migration 0003 or later).
        signer: The newest signing key (see ``load_keys``).
        origin_prefix: Host-like prefix of each tenant's checkpoint origin.
        verifiers: The keys it replaced, whose checkpoints must still verify.
    """

    def __init__(
        self, db: Database, signer: Signer, *, origin_prefix: str = "tenantry.local",
        verifiers: Sequence[Verifier] = (),
    ) -> None:
        self.db = db
        self._seed = signer.seed
        self._keys = (signer.verifier, *verifiers)
        self.origin_prefix = origin_prefix
        self._group = GroupCommit(db)

    def signer_for(self, tenant_id: str) -> Signer:
        """The newest key, named for the tenant's log."""
        return Signer(self.origin(tenant_id), self._seed)

    def verifiers_for(self, tenant_id: str) -> tuple[Verifier, ...]:
        """Every key that may have signed the tenant's checkpoints, newest first."""
        origin = self.origin(tenant_id)
        named = [Verifier(origin, key.public_key) for key in self._keys]
        return (*named, *(key for key in self._keys if key.name != origin))

    def verifier_keys(self, tenant_id: str) -> list[str]:
        """What an auditor pins to check the tenant's checkpoints, newest key first."""
        return [format_verifier_key(v) for v in self.verifiers_for(tenant_id)]

    def origin(self, tenant_id: str) -> str:
        """The checkpoint origin of a tenant's log: ``<prefix>/tenants/<tenant_id>``."""
        return f"{self.origin_prefix}/tenants/{tenant_id}"

    def append(
        self, conn: Connection, tenant_id: str, event: str, fields: Mapping[str, Any],
        *, run_id: str | None = None,
    ) -> int:
        """Append an event in the caller's transaction and return its sequence number.

        The tenant's head stays locked until that transaction ends, so keep it short
        and append near its end.

        Raises:
            AuditError: An id is malformed, or ``fields`` holds a long string or a
                value that is not JSON.
        """
        return append_entries(conn, tenant_id, [prepare(tenant_id, event, fields, run_id)])[0]

    async def record(
        self, tenant_id: str, event: str, fields: Mapping[str, Any], *, run_id: str | None = None
    ) -> int:
        """Append an event in a transaction of its own; return its sequence number.

        Concurrent calls for one tenant share a transaction (see
        ``core.audit.append.GroupCommit``): each event still commits exactly once,
        and a failed transaction fails every call in it.
        """
        return await self._group.record(tenant_id, prepare(tenant_id, event, fields, run_id))

    async def digest(self, tenant_id: str, content: str) -> str:
        """The salted digest of ``content``, for an event recorded outside a run."""
        return digest_with(await self.db.run(salt, tenant_id), content)

    async def sign_checkpoint(self, tenant_id: str) -> StoredCheckpoint:
        """Sign the tenant's current tree head and store it.

        The events since the previous checkpoint are first rebuilt onto the tree it
        signed, so a checkpoint is never signed over a head that does not extend the
        last signed one or does not match its events.

        Raises:
            AuditError: The events since the last checkpoint do not match the head.
        """
        head, latest = await self.db.run(_head_and_latest, tenant_id)
        head = head or CompactRange()
        start, signed = CompactRange(), []
        if latest is not None:
            # The checker first checks that the latest checkpoint signs this state's root.
            stored, state = latest
            start, signed = decode_range(stored.size, state), [stored]
        checker = LogChecker(tenant_id, self.origin(tenant_id), self.verifiers_for(tenant_id),
                             signed, start)
        await feed_batches(
            checker, event_batches(self.db, tenant_id, after=start.size, upto=head.size)
        )
        report = checker.finish(head.size, head.root())
        if not report.ok:
            raise AuditError(f"refusing to sign the head of {tenant_id!r}: {report.reason}")
        note = sign_note(format_checkpoint(self.origin(tenant_id), head.size, head.root()),
                         self.signer_for(tenant_id))
        return await self.db.run(store_checkpoint, tenant_id, head, note)

    async def latest_checkpoint(self, tenant_id: str) -> StoredCheckpoint | None:
        """The newest signed checkpoint of the tenant's log, if any."""
        latest = await self.db.run(read_latest_checkpoint, tenant_id)
        return None if latest is None else latest[0]

    async def recent(
        self, tenant_id: str, limit: int = 20, events: Collection[str] | None = None
    ) -> list[AuditEvent]:
        """The tenant's newest events, newest first, optionally of some types only."""
        return await self.db.run(recent_events, tenant_id, limit, events)

    async def verify(self, tenant_id: str) -> VerifyReport:
        """Rebuild the tenant's tree from its events and check every checkpoint and the head.

        Events appended while this runs are checked too: the head is read after the
        events ran out, and reading goes on until it has caught up with the head.

        Raises:
            NotFound: no such tenant, and no log of one.
        """
        checkpoints = await self.db.run(read_checkpoints, tenant_id)
        if not checkpoints and not await self.db.run(_tenant_known, tenant_id):
            raise NotFound(f"no tenant {tenant_id!r} and no audit log of it")
        checker = LogChecker(tenant_id, self.origin(tenant_id), self.verifiers_for(tenant_id),
                             checkpoints)
        while True:
            before = checker.size
            fed = await feed_batches(checker, event_batches(self.db, tenant_id, after=before))
            head = await self.db.run(read_head, tenant_id)
            if not fed or head is None or head.size <= checker.size or checker.size == before:
                break
        if head is None:
            return checker.finish(None, None)
        return checker.finish(head.size, head.root())

    async def checkpoints(self, tenant_id: str) -> list[StoredCheckpoint]:
        """Every signed checkpoint of the tenant's log, oldest first."""
        return await self.db.run(read_checkpoints, tenant_id)

    async def inclusion_proof(self, tenant_id: str, seq: int) -> InclusionProof:
        """Prove that event ``seq`` is in the tenant's tree.

        The proof is against the newest signed checkpoint when that covers the event
        (so it carries the signed note), else against the current, unsigned head. It
        reads every leaf hash up to that size, so it costs time linear in the log.

        Raises:
            NotFound: The tenant's log has no event ``seq``.
            AuditError: The stored leaf hashes do not lead to the tree's root.
        """
        head, latest = await self.db.run(_head_and_latest, tenant_id)
        row = await self.db.run(_event, tenant_id, seq)
        if head is None or row is None or not 1 <= seq <= head.size:
            raise NotFound(f"tenant {tenant_id!r} has no audit event {seq}")
        checkpoint = latest[0] if latest is not None and latest[0].size >= seq else None
        size = head.size if checkpoint is None else checkpoint.size
        root = head.root() if checkpoint is None else bytes.fromhex(checkpoint.root)
        leaves = await stored_leaves(self.db, tenant_id, size)
        path = await asyncio.to_thread(_audit_path, leaves, seq - 1, size, root)
        return InclusionProof(row, row.leaf_hash, seq - 1, size, path, root.hex(),
                              None if checkpoint is None else checkpoint.note)

    async def export(self, tenant_id: str, path: Path) -> None:
        """Write the tenant's log as a self-contained bundle (see ``verify_bundle``)."""
        await write_bundle(self.db, tenant_id, self.origin(tenant_id),
                           self.verifier_keys(tenant_id), path)


def salt(conn: Connection, tenant_id: str) -> bytes:
    """The tenant's digest salt, created on first use.

    Content appears in the log only as ``digest_with(salt, content)``. A run fetches
    the salt once, when it starts; a purge deletes it (``shred``), after which no
    digest can be matched to a guessed content any more.
    """
    require_id("tenant_id", tenant_id)
    query = select(audit_salts.c.salt).where(audit_salts.c.tenant_id == tenant_id)
    found = conn.scalar(query)
    if found is None:
        conn.execute(
            dialect_insert(conn, audit_salts)
            .values(tenant_id=tenant_id, salt=secrets.token_hex(32), created_at=datetime.now(UTC))
            .on_conflict_do_nothing()
        )
        found = conn.scalar(query)
    if found is None:
        raise AuditError(f"the audit salt of tenant {tenant_id!r} vanished while created")
    return bytes.fromhex(found)


def shred(conn: Connection, tenant_id: str) -> None:
    """Delete the tenant's salt (part of a purge).

    Events stay, so the log still verifies, but their digests no longer link to any
    content. Append a ``tenant.purged`` event in the same transaction.
    """
    conn.execute(delete(audit_salts).where(audit_salts.c.tenant_id == tenant_id))


@reads
def recent_events(
    conn: Connection, tenant_id: str, limit: int = 20, events: Collection[str] | None = None
) -> list[AuditEvent]:
    """The tenant's newest events, newest first, optionally of some types only."""
    query = (
        select(audit_events)
        .where(audit_events.c.tenant_id == tenant_id)
        .order_by(audit_events.c.seq.desc())
        .limit(limit)
    )
    if events is not None:
        query = query.where(audit_events.c.event.in_(list(events)))
    return [_audit_event(row) for row in conn.execute(query)]


@reads
def run_events_after(conn: Connection, tenant_id: str, run_id: str, after: int,
                     limit: int = 500) -> list[AuditEvent]:
    """One run's events after sequence number ``after``, oldest first: for following a
    run as it goes (``after`` the last one seen)."""
    c = audit_events.c
    return [_audit_event(row) for row in conn.execute(
        select(audit_events).where(c.tenant_id == tenant_id, c.run_id == run_id,
                                   c.seq > after).order_by(c.seq).limit(limit))]


def _audit_event(row: Any) -> AuditEvent:
    return AuditEvent(row.tenant_id, int(row.seq), row.run_id, row.event, row.time,
                      json.loads(row.fields), row.leaf_hash)


@reads
def _event(conn: Connection, tenant_id: str, seq: int) -> AuditEvent | None:
    row = conn.execute(select(audit_events).where(
        audit_events.c.tenant_id == tenant_id, audit_events.c.seq == seq)).first()
    return None if row is None else _audit_event(row)


@reads
def _tenant_known(conn: Connection, tenant_id: str) -> bool:
    """Whether the tenant exists, or once wrote to its log (a purged tenant's log stays)."""
    for column in (tenants.c.id, audit_heads.c.tenant_id):
        if conn.scalar(select(column).where(column == tenant_id)) is not None:
            return True
    return False


@reads
def _head_and_latest(
    conn: Connection, tenant_id: str
) -> tuple[CompactRange | None, tuple[StoredCheckpoint, str] | None]:
    return read_head(conn, tenant_id), read_latest_checkpoint(conn, tenant_id)


def arguments_fields(salt: bytes, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """What the log keeps of a tool call's arguments: their names and one salted digest.

    Never the values, however short: an account number or a search query is the
    tenant's content, and a purge that shreds the salt must leave nothing readable.
    """
    names = sorted(str(name)[:64] for name in arguments)[:32]
    return {"argument_names": names,
            "arguments_digest": digest_with(salt, to_json(arguments).decode())}


def digest_with(salt: bytes, content: str) -> str:
    """The salted HMAC-SHA256 (hex) of ``content`` under a tenant's ``salt``."""
    return hmac.new(salt, content.encode("utf-8"), sha256).hexdigest()


def _audit_path(leaves: list[bytes], index: int, size: int, root: bytes) -> tuple[str, ...]:
    if len(leaves) != size or root_from_leaf_hashes(leaves) != root:
        raise AuditError(f"the stored leaf hashes do not lead to the root of the tree of size "
                         f"{size}; run `tenantry audit verify` to find the changed event")
    return tuple(item.hex() for item in inclusion_proof(leaves, index))
