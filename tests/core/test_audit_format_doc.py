"""docs/audit.md's test vector is what the log computes: outside verifiers rely on it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.audit.events import canonical_bytes, canonical_json
from core.merkle import leaf_hash, root_from_leaf_hashes

DOC = Path(__file__).parents[2] / "docs" / "audit.md"


def test_the_documented_leaf_encoding_and_hashes_hold() -> None:
    text = DOC.read_text(encoding="utf-8")
    inputs = re.findall(r"leaf \d input: (.+)", text)
    hashes = re.findall(r"leaf \d hash: +([0-9a-f]{64})", text)
    [root] = re.findall(r"root of 2: +([0-9a-f]{64})", text)
    assert len(inputs) == len(hashes) == 2

    leaves = []
    for documented, expected in zip(inputs, hashes, strict=True):
        event = json.loads(documented)
        encoded = canonical_bytes(event["tenant_id"], event["seq"], event["run_id"],
                                  event["event"], event["time"], canonical_json(event["fields"]))
        assert encoded == documented.encode("utf-8")
        assert encoded == json.dumps(event, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")
        assert leaf_hash(encoded).hex() == expected
        leaves.append(leaf_hash(encoded))
    assert root_from_leaf_hashes(leaves).hex() == root
