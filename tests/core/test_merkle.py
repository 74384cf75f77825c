"""Tests for core.merkle: reference constants, transparency-dev vectors, round trips."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest

from core.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
VECTORS = SHARED / "testdata" / "merkle"
SHARED_MISSING = f"shared test data not found at {SHARED.resolve()}: a clone outside the workspace?"

# The 8-leaf reference tree of RFC 6962 test suites, as listed in shared/NOTICE.md.
REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
REFERENCE_HASHES = [leaf_hash(leaf) for leaf in REFERENCE_LEAVES]


@dataclass(frozen=True)
class InclusionVector:
    leaf_index: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    proof: list[bytes]
    want_error: bool


@dataclass(frozen=True)
class ConsistencyVector:
    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: list[bytes]
    want_error: bool


def _b64(value: str) -> bytes:
    """Decode a Go ``[]byte`` JSON field (standard base64, padded)."""
    return base64.b64decode(value, validate=True)


def _proof(raw: dict[str, Any]) -> list[bytes]:
    return [_b64(str(item)) for item in raw["proof"] or []]


def _load_inclusion(path: Path) -> InclusionVector:
    raw: dict[str, Any] = json.loads(path.read_text())
    return InclusionVector(
        leaf_index=int(raw["leafIdx"]),
        tree_size=int(raw["treeSize"]),
        root=_b64(str(raw["root"])),
        leaf_hash=_b64(str(raw["leafHash"])),
        proof=_proof(raw),
        want_error=bool(raw["wantErr"]),
    )


def _load_consistency(path: Path) -> ConsistencyVector:
    raw: dict[str, Any] = json.loads(path.read_text())
    return ConsistencyVector(
        size1=int(raw["size1"]),
        size2=int(raw["size2"]),
        root1=_b64(str(raw["root1"])),
        root2=_b64(str(raw["root2"])),
        proof=_proof(raw),
        want_error=bool(raw["wantErr"]),
    )


def _vector_files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _vector_params(kind: str) -> list[Any]:
    if not SHARED.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=SHARED_MISSING))]
    return [pytest.param(path, id=str(path.relative_to(VECTORS))) for path in _vector_files(kind)]


def _mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 MTH, written straight from the RFC's recursive definition."""
    if not hashes:
        return sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    split = 1
    while split * 2 < len(hashes):
        split *= 2
    return node_hash(_mth(hashes[:split]), _mth(hashes[split:]))


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(index.to_bytes(4, "big")) for index in range(count)]


def _flip_bit(value: bytes) -> bytes:
    return bytes([value[0] ^ 0x10]) + value[1:]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


def test_leaf_hash_of_empty_leaf() -> None:
    expected = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"").hex() == expected


def test_reference_tree_root() -> None:
    expected = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert root_from_leaf_hashes(REFERENCE_HASHES).hex() == expected


def test_node_hash_prefixes_children_with_one() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) == sha256(b"\x01" + left + right).digest()


@pytest.mark.parametrize("size", range(1, 70))
def test_root_matches_recursive_definition(size: int) -> None:
    hashes = _leaves(size)
    assert root_from_leaf_hashes(hashes) == _mth(hashes)


def test_root_rejects_hashes_of_wrong_length() -> None:
    with pytest.raises(ValueError, match="leaf hash 1 has 3 bytes"):
        root_from_leaf_hashes([leaf_hash(b"a"), b"abc"])


def test_compact_range_root_after_every_append() -> None:
    hashes = _leaves(70)
    accumulator = CompactRange()
    for size, leaf in enumerate(hashes, start=1):
        accumulator.append(leaf)
        assert accumulator.size == size
        assert len(accumulator.hashes) == size.bit_count()
        assert accumulator.root() == _mth(hashes[:size])


def test_compact_range_resumes_from_its_state() -> None:
    hashes = _leaves(45)
    first = CompactRange()
    for leaf in hashes[:21]:
        first.append(leaf)
    resumed = CompactRange(first.size, first.hashes)
    for leaf in hashes[21:]:
        resumed.append(leaf)
    assert resumed.root() == root_from_leaf_hashes(hashes)


def test_compact_range_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="border hashes"):
        CompactRange(3, [leaf_hash(b"a")])
    with pytest.raises(ValueError, match="non-negative"):
        CompactRange(-1)
    with pytest.raises(ValueError, match="leaf hash"):
        CompactRange().append(b"raw entry, not a leaf hash")


def test_vectors_are_all_present() -> None:
    if not SHARED.is_dir():
        pytest.skip(SHARED_MISSING)
    assert len(_vector_files("inclusion")) + len(_vector_files("consistency")) == 196


@pytest.mark.parametrize("path", _vector_params("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    vector = _load_inclusion(path)
    args = (vector.leaf_hash, vector.leaf_index, vector.tree_size, vector.proof, vector.root)
    if vector.want_error:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _vector_params("consistency"))
def test_consistency_vector(path: Path) -> None:
    vector = _load_consistency(path)
    args = (vector.size1, vector.size2, vector.proof, vector.root1, vector.root2)
    if vector.want_error:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@pytest.mark.parametrize("case", ["0", "1", "2", "3", "4"])
def test_generated_proofs_equal_the_vectors(case: str) -> None:
    """The happy paths come from the reference tree; our proofs must be byte-identical."""
    if not SHARED.is_dir():
        pytest.skip(SHARED_MISSING)
    inclusion = _load_inclusion(VECTORS / "inclusion" / case / "happy-path.json")
    tree = REFERENCE_HASHES[: inclusion.tree_size]
    assert root_from_leaf_hashes(tree) == inclusion.root
    assert inclusion_proof(tree, inclusion.leaf_index) == inclusion.proof

    consistency = _load_consistency(VECTORS / "consistency" / case / "happy-path.json")
    tree = REFERENCE_HASHES[: consistency.size2]
    assert root_from_leaf_hashes(tree[: consistency.size1]) == consistency.root1
    assert root_from_leaf_hashes(tree) == consistency.root2
    assert consistency_proof(tree, consistency.size1) == consistency.proof


def test_inclusion_round_trip_up_to_40_leaves() -> None:
    hashes = _leaves(40)
    for size in range(1, 41):
        tree = hashes[:size]
        root = root_from_leaf_hashes(tree)
        for index in range(size):
            proof = inclusion_proof(tree, index)
            verify_inclusion(tree[index], index, size, proof, root)


def test_consistency_round_trip_up_to_40_leaves() -> None:
    hashes = _leaves(40)
    roots = [root_from_leaf_hashes(hashes[:size]) for size in range(41)]
    for size2 in range(1, 41):
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(hashes[:size2], size1)
            verify_consistency(size1, size2, proof, roots[size1], roots[size2])


def test_tampered_inclusion_proofs_fail() -> None:
    tree = _leaves(13)
    root = root_from_leaf_hashes(tree)
    index = 6
    proof = inclusion_proof(tree, index)
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = _flip_bit(tampered[position])
        with pytest.raises(ProofError, match="mismatched"):
            verify_inclusion(tree[index], index, 13, tampered, root)
    with pytest.raises(ProofError, match="mismatched"):
        verify_inclusion(tree[index + 1], index, 13, proof, root)
    with pytest.raises(ProofError, match="wrong proof size"):
        verify_inclusion(tree[index], index, 13, proof[:-1], root)
    with pytest.raises(ProofError, match="wrong proof size"):
        verify_inclusion(tree[index], index, 13, [*proof, root], root)


def test_tampered_consistency_proofs_fail() -> None:
    tree = _leaves(13)
    root1, root2 = root_from_leaf_hashes(tree[:6]), root_from_leaf_hashes(tree)
    proof = consistency_proof(tree, 6)
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = _flip_bit(tampered[position])
        with pytest.raises(ProofError, match="mismatched"):
            verify_consistency(6, 13, tampered, root1, root2)
    with pytest.raises(ProofError, match="mismatched"):
        verify_consistency(6, 13, proof, root2, root2)
    with pytest.raises(ProofError, match="wrong proof size"):
        verify_consistency(6, 13, proof[1:], root1, root2)


def test_root_mismatch_reports_both_roots() -> None:
    tree = _leaves(5)
    root = root_from_leaf_hashes(tree)
    wrong = _flip_bit(root)
    with pytest.raises(ProofError) as raised:
        verify_inclusion(tree[2], 2, 5, inclusion_proof(tree, 2), wrong)
    message = str(raised.value)
    assert f"at size 5 mismatched: computed {root.hex()}, expected {wrong.hex()}" in message


@pytest.mark.parametrize(
    ("index", "size", "message"),
    [(5, 5, "beyond size"), (-1, 5, "non-negative"), (0, 0, "beyond size")],
)
def test_inclusion_rejects_impossible_positions(index: int, size: int, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        verify_inclusion(leaf_hash(b""), index, size, [], EMPTY_ROOT)


@pytest.mark.parametrize(
    ("size1", "size2", "message"),
    [(3, 2, "size2"), (0, 4, "empty tree"), (0, 0, "empty tree"), (-1, 4, "non-negative")],
)
def test_consistency_rejects_impossible_sizes(size1: int, size2: int, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        verify_consistency(size1, size2, [], EMPTY_ROOT, EMPTY_ROOT)


def test_proof_generation_rejects_out_of_range_arguments() -> None:
    tree = _leaves(4)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(tree, 4)
    with pytest.raises(ValueError, match="out of range"):
        consistency_proof(tree, 0)
    with pytest.raises(ValueError, match="out of range"):
        consistency_proof(tree, 5)
    assert consistency_proof(tree, 4) == []
