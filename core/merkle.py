"""RFC 6962 Merkle tree hashing, proofs, and proof verification.

Each tenant's audit log is an append-only list of entries whose state is
published as the root of an RFC 6962 (RFC 9162, section 2.1) Merkle tree. Anyone
holding a signed root can then check offline that an entry is in the log
(inclusion) and that a later log extends an earlier one (consistency).
Verification follows transparency-dev/merkle's ``proof/verify.go``, including its
edge cases, so that proofs interoperate with existing transparency-log tooling
and pass that project's test vectors.

Hashes are 32-byte SHA-256 digests. Tree sizes and indices are Python ints;
a negative one is rejected instead of wrapping around as a Go ``uint64`` would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A proof is malformed, or does not prove what it claims.

    One type for every failure, so that callers treat "not proven" uniformly;
    the message names the check that failed (and both roots, if they differ).
    """


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 hash of a leaf.

    The 0x00 prefix keeps a leaf from ever hashing like an interior node,
    which is what makes second-preimage attacks on the tree fail.
    """
    return sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an interior node from its children's hashes."""
    return sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return the root of the tree whose leaves have the given hashes.

    Raises:
        ValueError: A leaf hash is not 32 bytes long.
    """
    _require_hashes("leaf hash", hashes)
    return _root(hashes)


class CompactRange:
    """The right border of a growing tree: one hash per perfect subtree.

    An appender keeps ``size.bit_count()`` hashes instead of every leaf hash
    and still has the root after each append. ``size`` and ``hashes`` are the
    state to persist; hand them back to the constructor to resume.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        """Resume a range of ``size`` leaves from its perfect subtrees' roots, largest first.

        Raises:
            ValueError: The hashes do not fit the size, or one is not 32 bytes.
        """
        border = list(hashes)
        if size < 0:
            raise ValueError(f"tree size must be non-negative, got {size}")
        if len(border) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} border hashes, got {len(border)}"
            )
        _require_hashes("border hash", border)
        self._size = size
        self._hashes = border

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees, largest (leftmost) first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf, merging the perfect subtrees it completes.

        Raises:
            ValueError: ``leaf_hash`` is not 32 bytes long.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash has {len(leaf_hash)} bytes, want {HASH_SIZE}")
        merged = leaf_hash
        size = self._size
        while size & 1:
            merged = node_hash(self._hashes.pop(), merged)
            size >>= 1
        self._hashes.append(merged)
        self._size += 1

    def root(self) -> bytes:
        """Return the root of the tree of ``size`` leaves."""
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Return the RFC 6962 audit path of leaf ``index`` in the tree of ``hashes``.

    The proof lists sibling hashes from the leaf up to the root, as
    ``verify_inclusion`` expects. Without stored interior nodes this hashes
    the whole tree once, so it is linear in the number of leaves.

    Raises:
        ValueError: ``index`` is outside the tree, or a leaf hash is not 32 bytes.
    """
    _require_hashes("leaf hash", hashes)
    if not 0 <= index < len(hashes):
        raise ValueError(f"index {index} out of range for tree size {len(hashes)}")
    path: list[bytes] = []
    low, high = 0, len(hashes)
    while high - low > 1:
        middle = low + _split_point(high - low)
        if index < middle:
            path.append(_root(hashes[middle:high]))
            high = middle
        else:
            path.append(_root(hashes[low:middle]))
            low = middle
    path.reverse()
    return path


def consistency_proof(hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """Return the RFC 6962 proof that the first ``size1`` leaves are a prefix of ``hashes``.

    A proof from the empty tree is refused, as transparency-dev/merkle does:
    every tree extends the empty one, so there is nothing to prove.

    Raises:
        ValueError: ``size1`` is not in ``1..len(hashes)``, or a leaf hash is
            not 32 bytes.
    """
    _require_hashes("leaf hash", hashes)
    if not 0 < size1 <= len(hashes):
        raise ValueError(f"size1 {size1} out of range for tree size {len(hashes)}")
    path: list[bytes] = []
    low, high = 0, len(hashes)
    remaining = size1
    old_root_is_known = True
    while remaining != high - low:
        split = _split_point(high - low)
        if remaining <= split:
            path.append(_root(hashes[low + split : high]))
            high = low + split
        else:
            path.append(_root(hashes[low : low + split]))
            low += split
            remaining -= split
            old_root_is_known = False
    if not old_root_is_known:
        path.append(_root(hashes[low:high]))
    path.reverse()
    return path


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Raises:
        ProofError: The arguments or the proof are malformed, or the proof leads
            to a different root.
    """
    if index < 0 or size < 0:
        raise ProofError(f"index and size must be non-negative, got {index} and {size}")
    if index >= size:
        raise ProofError(f"index is beyond size: {index} >= {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash has unexpected size {len(leaf_hash)}, want {HASH_SIZE}")
    inner, border = _decompose_inclusion_proof(index, size)
    _require_proof_size(len(proof), inner + border)
    seed = _chain_inner(leaf_hash, proof[:inner], index)
    _require_match(size, _chain_border_right(seed, proof[inner:]), root)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the one of ``size1`` with ``root1``.

    Equal sizes need an empty proof and equal roots; a proof from the empty
    tree is refused (see ``consistency_proof``).

    Raises:
        ProofError: The sizes or the proof are malformed, or the proof leads to a
            different ``root1`` or ``root2``.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError(f"sizes must be non-negative, got {size1} and {size2}")
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) < size1 ({size1})")
    if size1 == 0:
        raise ProofError("consistency proof from empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("size1 == size2, but proof is not empty")
        _require_match(size2, root1, root2)
        return
    if not proof:
        raise ProofError("empty proof")

    inner, border = _decompose_inclusion_proof(size1 - 1, size2)
    # The levels inside the old tree's rightmost perfect subtree, as many as
    # size1 has trailing zero bits, are not in the proof.
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    # A perfect old tree is its own root; otherwise the proof starts with the
    # root of the old tree's rightmost perfect subtree.
    start = 0 if size1 == 1 << shift else 1
    _require_proof_size(len(proof), start + inner + border)
    seed = proof[0] if start else root1
    rest = proof[start:]

    mask = (size1 - 1) >> shift
    hash1 = _chain_inner_right(seed, rest[:inner], mask)
    _require_match(size1, _chain_border_right(hash1, rest[inner:]), root1)
    hash2 = _chain_inner(seed, rest[:inner], mask)
    _require_match(size2, _chain_border_right(hash2, rest[inner:]), root2)


def _root(hashes: Sequence[bytes]) -> bytes:
    """Hash level by level, carrying an odd last node up unchanged.

    That builds exactly RFC 6962's tree (left subtree: the largest power of
    two below the size) without recursion.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        pairs = iter(level)
        parents = [
            sha256(_NODE_PREFIX + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) & 1:
            parents.append(level[-1])
        level = parents
    return level[0]


def _split_point(size: int) -> int:
    """Return the largest power of two below ``size`` (``size`` >= 2): RFC 6962's k."""
    return 1 << ((size - 1).bit_length() - 1)


def _decompose_inclusion_proof(index: int, size: int) -> tuple[int, int]:
    """Split a proof's length where the paths to ``index`` and ``size - 1`` meet.

    Below that point siblings sit on either side; above it they are all left
    siblings on the tree's right border.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Chain siblings on either side; bit ``level`` of ``index`` says which side."""
    for level, sibling in enumerate(proof):
        is_right_child = (index >> level) & 1
        seed = node_hash(sibling, seed) if is_right_child else node_hash(seed, sibling)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Chain only the left siblings: the subtree as it was before the right ones existed."""
    for level, sibling in enumerate(proof):
        if (index >> level) & 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed


def _require_match(size: int, computed: bytes, expected: bytes) -> None:
    if computed != expected:
        raise ProofError(
            f"root hash at size {size} mismatched: "
            f"computed {computed.hex()}, expected {expected.hex()}"
        )


def _require_proof_size(got: int, want: int) -> None:
    if got != want:
        raise ProofError(f"wrong proof size {got}, want {want}")


def _require_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for position, value in enumerate(hashes):
        if len(value) != HASH_SIZE:
            raise ValueError(f"{what} {position} has {len(value)} bytes, want {HASH_SIZE}")
