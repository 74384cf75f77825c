"""A new version of a document replaces the old one at once, and its ingestion is audited."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from core.audit.events import DOCUMENT_INGESTED
from core.builder import build_context
from core.context import TenantContext
from core.db.engine import Database
from core.knowledge import Knowledge
from core.vectors.embedded import EmbeddedVectorStore
from core.vectors.embeddings import HashingEmbedder
from tests.support.auditing import audit_log
from tests.support.tenancy import plan, tenant_on

OLD = "\n\n".join(f"Old paragraph {n} about the refund window of thirty days." for n in range(1500))
NEW = "\n\n".join(f"New paragraph {n} about the refund window of sixty days." for n in range(1500))


class FailsAfter:
    """Embeds ``batches`` batches, then fails, as a process killed halfway would stop."""

    def __init__(self, batches: int) -> None:
        self.inner = HashingEmbedder()
        self.dim = self.inner.dim
        self.batches = batches

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.batches == 0:
            raise RuntimeError("stopped halfway")
        self.batches -= 1
        return await self.inner.embed(texts)


async def context(db: Database) -> TenantContext:
    await tenant_on(db, "acme", plan())
    grant = await build_context(db, tenant_id="acme", principal_id="operator:cli",
                                principal_kind="service", initiator="user")
    return grant.ctx


async def test_a_new_version_stopped_halfway_leaves_the_old_one_whole(db: Database) -> None:
    ctx = await context(db)
    store = EmbeddedVectorStore(db)
    stored = await Knowledge(store, HashingEmbedder(), audit_log(db)).add(ctx, "faq", OLD)
    assert stored > 64, "more than one embedding batch"

    with pytest.raises(RuntimeError, match="stopped halfway"):
        await Knowledge(store, FailsAfter(batches=1), audit_log(db)).add(ctx, "faq", NEW)

    found = await Knowledge(store, HashingEmbedder(), audit_log(db)).search(ctx, "refund", 20)
    assert found and all(match.text.startswith("Old paragraph") for match in found)
    assert len({m.chunk for m in found}) == len(found)


async def test_a_whole_new_version_replaces_the_old_one_and_is_audited(db: Database) -> None:
    ctx = await context(db)
    audit = audit_log(db)
    knowledge = Knowledge(EmbeddedVectorStore(db), HashingEmbedder(), audit)
    await knowledge.add(ctx, "faq", OLD)

    stored = await knowledge.add(ctx, "faq", NEW[: len(NEW) // 2])

    found = await knowledge.search(ctx, "refund window days", 20)
    assert found and all(match.text.startswith("New paragraph") for match in found)
    ingested = await audit.recent("acme", events={DOCUMENT_INGESTED})
    assert [event.fields["chunks"] for event in reversed(ingested)][-1] == stored
    assert len(ingested) == 2 and "faq" not in str(ingested[0].fields)
