"""Whether today's log still extends a tree head someone kept.

A tenant that saved a signed checkpoint (the App Home shows the latest; ``tenantry
audit checkpoints`` prints every one) can check that the log was neither rolled back
(it is shorter than the checkpoint) nor rewritten (it has another root at that size).
An RFC 6962 consistency proof shows it in a logarithmic number of hashes, so anyone
can check the answer with any RFC 6962 implementation, without trusting Tenantry.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from core.audit.log import AuditLog
from core.audit.store import read_head, stored_leaves
from core.audit.verify import VerifyReport
from core.errors import InvalidInput, NotFound
from core.merkle import ProofError, consistency_proof, root_from_leaf_hashes, verify_consistency
from core.signed_note import NoteError, parse_checkpoint, verify_note


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """RFC 6962 proof that the tree of ``size2`` events extends the one of ``size1``."""

    tenant_id: str
    size1: int
    size2: int
    root1: str
    root2: str
    proof: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The proof as printed by ``tenantry audit consistency``: hex hashes."""
        return dataclasses.asdict(self) | {"proof": list(self.proof)}


async def prove_consistency(audit: AuditLog, tenant_id: str, size1: int,
                            size2: int | None = None) -> ConsistencyProof:
    """Prove that the log at ``size2`` (default: its head) extends the log at ``size1``.

    Raises:
        InvalidInput: ``size1`` is not between 1 and ``size2``.
        NotFound: the log holds fewer than ``size2`` events.
    """
    head = await audit.db.run(read_head, tenant_id)
    held = 0 if head is None else head.size
    size2 = held if size2 is None else size2
    if size2 > held:
        raise NotFound(f"the audit log of {tenant_id!r} holds {held} events, not {size2}")
    if not 1 <= size1 <= size2:
        raise InvalidInput(f"a consistency proof needs 1 <= from ({size1}) <= to ({size2})")
    leaves = await stored_leaves(audit.db, tenant_id, size2)

    def prove() -> ConsistencyProof:
        root1, root2 = root_from_leaf_hashes(leaves[:size1]), root_from_leaf_hashes(leaves)
        proof = consistency_proof(leaves, size1)
        verify_consistency(size1, size2, proof, root1, root2)
        return ConsistencyProof(tenant_id, size1, size2, root1.hex(), root2.hex(),
                                tuple(item.hex() for item in proof))

    return await asyncio.to_thread(prove)


async def verify_against(audit: AuditLog, tenant_id: str, note: str) -> VerifyReport:
    """Verify the whole log, then that it extends the signed checkpoint ``note``.

    The note must be signed by one of the deployment's keys for this tenant's log;
    a note that is not is refused (nothing can be concluded from it).

    Raises:
        InvalidInput: the note does not verify, or is of another log.
    """
    try:
        kept = parse_checkpoint(verify_note(note, audit.verifiers_for(tenant_id)))
    except NoteError as error:
        raise InvalidInput(f"the checkpoint you kept does not verify: {error}") from None
    if kept.origin != audit.origin(tenant_id):
        raise InvalidInput(f"the checkpoint you kept is of {kept.origin!r}, "
                           f"not of {audit.origin(tenant_id)!r}")
    report = await audit.verify(tenant_id)
    if not report.ok or kept.size == 0:
        return report
    if kept.size > report.size:
        return dataclasses.replace(report, ok=False, first_bad_seq=report.size + 1, reason=(
            f"the log holds {report.size} events, fewer than the {kept.size} of the "
            "checkpoint you kept: it was rolled back"))
    proof = await prove_consistency(audit, tenant_id, kept.size, report.size)
    try:
        verify_consistency(kept.size, report.size, [bytes.fromhex(h) for h in proof.proof],
                           kept.root, bytes.fromhex(report.root))
    except ProofError:
        return dataclasses.replace(report, ok=False, reason=(
            f"the log's first {kept.size} events are not those of the checkpoint you "
            f"kept (root {kept.root.hex()[:16]}…, now {proof.root1[:16]}…): it was rewritten"))
    return report
