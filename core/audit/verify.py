"""Checking a tenant's log from its rows alone, and proving one event is in it.

``LogChecker`` is fed the stored events in sequence order and recomputes every leaf
from the event's own values, rebuilding the tree as it goes; at each signed
checkpoint it compares roots, and at the end it compares with the head. The stored
leaf hash is only used to *locate* a change: a row edited without its leaf hash
names its own seq; a row edited together with its leaf hash (an attacker who knows
the format) is caught by the first checkpoint signed after it, and reported as the
first event after the last checkpoint that still holds. The checker knows nothing
of databases, so the same code verifies a live log and an exported bundle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.audit.events import AuditEvent, canonical_bytes, canonical_json
from core.merkle import CompactRange, ProofError, leaf_hash, verify_inclusion
from core.signed_note import NoteError, Verifier, parse_checkpoint, verify_note

EventRow = tuple[int, str | None, str, str, str, str]
"""``(seq, run_id, event, time, fields_json, leaf_hash_hex)``, as stored."""


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed tree head of one tenant's log.

    ``root`` (hex) is the RFC 6962 root of its first ``size`` events; ``note`` is the
    C2SP checkpoint signing it, ready to publish; ``created_at`` is ISO-8601 UTC.
    """

    tenant_id: str
    size: int
    root: str
    note: str
    created_at: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of checking a log.

    Attributes:
        ok: Whether every event, checkpoint and the head agree.
        size: How many events were checked in sequence before stopping.
        root: Hex root of the tree rebuilt from those events.
        checkpoints_checked: Signed checkpoints whose signature and root held.
        first_bad_seq: The first event found missing, changed or out of place (see
            the module docstring for a rewrite with a forged leaf hash); ``None`` if
            ok, or if only a checkpoint itself is bad.
        reason: What failed, in words; ``None`` if ok.
    """

    tenant_id: str
    ok: bool
    size: int
    root: str
    checkpoints_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """An RFC 6962 proof that one event is in a tenant's tree of ``tree_size`` events.

    Hashes are hex. ``event`` is kept so that its leaf can be recomputed from its
    values; ``index`` is ``seq - 1``; ``checkpoint`` is the signed checkpoint of
    exactly that tree, if one was signed.
    """

    event: AuditEvent
    leaf_hash: str
    index: int
    tree_size: int
    proof: tuple[str, ...]
    root: str
    checkpoint: str | None = None

    def verify(self, *verifiers: Verifier) -> None:
        """Check the event, its leaf, the path to the root and, with keys, the signature.

        Raises:
            ProofError: Any of them does not hold.
        """
        event = self.event
        computed = leaf_hash(canonical_bytes(event.tenant_id, event.seq, event.run_id,
                                             event.event, event.time, canonical_json(event.fields)))
        if computed.hex() != self.leaf_hash:
            raise ProofError(f"event {self.event.seq} does not hash to the proven leaf")
        try:
            proof = [bytes.fromhex(item) for item in self.proof]
            root = bytes.fromhex(self.root)
        except ValueError as error:
            raise ProofError(f"proof is not hex: {error}") from None
        verify_inclusion(computed, self.index, self.tree_size, proof, root)
        if verifiers:
            if self.checkpoint is None:
                raise ProofError(f"no signed checkpoint at size {self.tree_size} to check")
            try:
                signed = parse_checkpoint(verify_note(self.checkpoint, verifiers))
            except NoteError as error:
                raise ProofError(f"checkpoint does not verify: {error}") from None
            if signed.size != self.tree_size or signed.root != root:
                raise ProofError("the signed checkpoint is of a different tree")


@dataclass
class LogChecker:
    """Rebuilds one tenant's tree from its events and checks it against what was signed.

    Feed batches of rows in sequence order with ``feed`` until it returns False
    (a problem was found) or the rows run out, then call ``finish``.

    Attributes:
        tenant_id: Whose log; part of every leaf.
        origin: The checkpoint origin the signatures must be for.
        verifiers: Keys whose signatures on checkpoints are trusted.
        checkpoints: Stored checkpoints to check, any order.
        start: A stored tree state to extend instead of the empty tree (rows then
            start after its size); a checkpoint of its size must sign its root.
    """

    tenant_id: str
    origin: str
    verifiers: Sequence[Verifier]
    checkpoints: Iterable[StoredCheckpoint]
    start: CompactRange = field(default_factory=CompactRange)
    _tree: CompactRange = field(default_factory=CompactRange, init=False)
    _pending: list[tuple[int, bytes]] = field(default_factory=list, init=False)
    _checked: int = field(default=0, init=False)
    _last_good: int = field(default=0, init=False)
    _bad_seq: int | None = field(default=None, init=False)
    _reason: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._tree = CompactRange(self.start.size, self.start.hashes)
        self._last_good = self.start.size
        for stored in sorted(self.checkpoints, key=lambda c: c.size, reverse=True):
            root = self._signed_root(stored)
            if root is None:
                return
            self._pending.append((stored.size, root))
        self._check_due()

    @property
    def size(self) -> int:
        """How many events have been checked so far."""
        return self._tree.size

    def _signed_root(self, stored: StoredCheckpoint) -> bytes | None:
        try:
            signed = parse_checkpoint(verify_note(stored.note, self.verifiers))
        except NoteError as error:
            self._fail(None, f"checkpoint at size {stored.size} does not verify: {error}")
            return None
        if signed.origin != self.origin:
            self._fail(None, f"checkpoint at size {stored.size} is for {signed.origin!r}, "
                             f"not {self.origin!r}")
            return None
        if signed.size != stored.size or signed.root.hex() != stored.root:
            self._fail(None, f"checkpoint at size {stored.size}: its row does not match "
                             "its signed note")
            return None
        return signed.root

    def _fail(self, seq: int | None, reason: str) -> None:
        """Note a problem, unless one was found before: the report names the first."""
        if self._reason is None:
            self._bad_seq = seq
            self._reason = reason

    def feed(self, rows: Iterable[EventRow]) -> bool:
        """Check the next rows; return False once a problem was found."""
        if self._reason is not None:
            return False
        tree, tenant_id = self._tree, self.tenant_id
        for seq, run_id, event, time, fields_json, stored_leaf in rows:
            expected = tree.size + 1
            if seq != expected:
                self._fail(expected, f"event {expected} is missing (the next stored is {seq})"
                           if seq > expected else f"event {seq} is stored out of order")
                return False
            leaf = leaf_hash(canonical_bytes(tenant_id, seq, run_id, event, time, fields_json))
            if leaf.hex() != stored_leaf:
                self._fail(seq, f"event {seq} was changed after it was written "
                                "(it no longer matches its leaf hash)")
                return False
            tree.append(leaf)
            if self._pending and self._pending[-1][0] == seq and not self._check_due():
                return False
        return True

    def _check_due(self) -> bool:
        """Compare every checkpoint of the current size with the rebuilt root."""
        while self._pending and self._pending[-1][0] == self._tree.size:
            size, root = self._pending.pop()
            if self._tree.root() != root:
                return self._diverged(size)
            self._checked += 1
            self._last_good = size
        return True

    def _diverged(self, size: int) -> bool:
        if size == self._last_good:
            self._fail(None, f"the checkpoint signed at size {size} is not of the tree the "
                             "log holds at that size")
        else:
            self._fail(self._last_good + 1, f"events {self._last_good + 1}..{size} do not match "
                       f"the checkpoint signed at size {size}: one of them was rewritten "
                       "together with its leaf hash")
        return False

    def finish(self, head_size: int | None, head_root: bytes | None) -> VerifyReport:
        """Compare with the head (``None`` if there is none) and report.

        A checkpoint beyond the last stored event means events were deleted from the
        end; an event beyond the head means one was inserted behind the log's back.
        """
        size = self._tree.size
        if self._pending:
            self._fail(size + 1, f"event {size + 1} is missing: the checkpoint signed at "
                                 f"size {self._pending[0][0]} includes it")
        if head_size is None or head_root is None:
            if size:
                self._fail(1, "the log has events but no head")
        elif head_size > size:
            self._fail(size + 1, f"event {size + 1} is missing: the head has {head_size} events")
        elif head_size < size:
            self._fail(head_size + 1, f"event {head_size + 1} is beyond the head "
                                      f"(size {head_size}): it was inserted outside the log")
        elif head_root != self._tree.root():
            self._fail(self._last_good + 1, "the head's tree state does not match the events "
                                            f"after the last good checkpoint ({self._last_good})")
        return VerifyReport(
            tenant_id=self.tenant_id,
            ok=self._reason is None,
            size=size,
            root=self._tree.root().hex(),
            checkpoints_checked=self._checked,
            first_bad_seq=self._bad_seq,
            reason=self._reason,
        )
