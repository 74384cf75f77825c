"""The Pinecone vector store: one namespace per tenant, through the SDK's asyncio client.

Pinecone's namespaces are its tenancy unit: every request names the tenant's namespace
(the resolver's partition; ``base`` refuses ``__default__`` before anything is sent),
and purging a tenant deletes it. A chunk is one record: id ``chunk_id(source, chunk)``,
the unit vector, and metadata holding ``source``, ``chunk`` and ``text`` beside the
item's own fields.

The SDK (10.x) defaults to data-plane API 2026-07; a documented header override pins
``2026-04`` here, the version whose OpenAPI spec the test fake is checked against.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final, Self

import numpy.typing as npt
from pinecone import AsyncIndex, ForbiddenError, NotFoundError, UnauthorizedError

from core.context import TenantContext
from core.errors import ConfigurationError, InvalidInput
from core.vectors.base import (
    RESERVED_METADATA,
    Match,
    MetadataValue,
    PartitionResolver,
    TenantPartitions,
    VectorItem,
    check_query,
    check_replacement,
    check_source,
    resolve_partition,
    source_prefix,
    tenant_partition,
)

DATA_PLANE_API_VERSION: Final = "2026-04"
API_VERSION_HEADER: Final = "X-Pinecone-Api-Version"
UPSERT_BATCH: Final = 100
DELETE_BATCH: Final = 1000
LIST_PAGE: Final = 100


class PineconeVectorStore:
    """A ``VectorStore`` on one Pinecone index (dense, cosine), a namespace per tenant.

    Open it with ``await PineconeVectorStore.connect(...)`` in the app's startup and
    ``await store.close()`` (or ``async with``) at shutdown.
    """

    def __init__(self, index: AsyncIndex, resolver: PartitionResolver | None = None) -> None:
        self.index = index
        self.resolver: PartitionResolver = resolver or TenantPartitions()

    @classmethod
    async def connect(
        cls, *, api_key: str, host: str, resolver: PartitionResolver | None = None
    ) -> PineconeVectorStore:
        """A store on the index at ``host`` (no control-plane lookup is made).

        Args:
            api_key: The Pinecone API key; sent as a header, never logged.
            host: The index's data-plane host, as the console or ``describe_index``
                gives it (``http://127.0.0.1:PORT`` for the test fake).
            resolver: Names each tenant's namespace; ``tenant-<id>`` by default.
        """
        headers = {API_VERSION_HEADER: DATA_PLANE_API_VERSION}
        return cls(AsyncIndex(host=host, api_key=api_key, additional_headers=headers), resolver)

    async def close(self) -> None:
        """Release the index client's connections."""
        await self.index.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def upsert(self, ctx: TenantContext, items: Sequence[VectorItem]) -> int:
        """Write chunks to the tenant's namespace; how many distinct ones (the last wins)."""
        _, namespace = resolve_partition(self.resolver, ctx)
        batch = list({item.id: _record(item) for item in items}.values())
        written = 0
        for start in range(0, len(batch), UPSERT_BATCH):
            with _credentials_checked():
                response = await self.index.upsert(
                    vectors=batch[start : start + UPSERT_BATCH], namespace=namespace
                )
            written += response.upserted_count
        return written

    async def query(self, ctx: TenantContext, vector: npt.ArrayLike, top_k: int) -> list[Match]:
        """The ``top_k`` chunks of the tenant's namespace most similar to ``vector``."""
        _, namespace = resolve_partition(self.resolver, ctx)
        values = check_query(vector, top_k).tolist()
        with _credentials_checked():
            response = await self.index.query(
                top_k=top_k, vector=values, namespace=namespace, include_metadata=True
            )
        return [_match(m.id, float(m.score), m.metadata or {}) for m in response.matches]

    async def delete_source(self, ctx: TenantContext, source: str) -> int:
        """Delete every chunk of ``source`` in the tenant's namespace.

        The ids listed under the source's prefix are deleted and counted; a delete by
        metadata filter then sweeps up, uncounted, what the eventually consistent
        listing had not caught up with.
        """
        _, namespace = resolve_partition(self.resolver, ctx)
        check_source(source)
        ids = await self._delete_listed(namespace, source)
        with _credentials_checked():
            await self.index.delete(filter={"source": {"$eq": source}}, namespace=namespace)
        return len(ids)

    async def _delete_listed(self, namespace: str, source: str,
                             keep: frozenset[str] = frozenset()) -> list[str]:
        """Delete the ids listed under ``source``'s prefix, but ``keep``; those deleted."""
        ids: list[str] = []
        with _credentials_checked():
            async for page in self.index.list(
                prefix=source_prefix(source), limit=LIST_PAGE, namespace=namespace
            ):
                ids.extend(item.id for item in page.vectors
                           if item.id is not None and item.id not in keep)
            for start in range(0, len(ids), DELETE_BATCH):
                await self.index.delete(ids=ids[start : start + DELETE_BATCH], namespace=namespace)
        return ids


    async def replace_source(self, ctx: TenantContext, source: str,
                             items: Sequence[VectorItem]) -> int:
        """Write the new chunks over the old ones, then delete the old ones left over.

        Pinecone has no transactions: while the new chunks land, a search may see some
        new and some old chunks of the source, but never fewer than one whole version.
        """
        _, namespace = resolve_partition(self.resolver, ctx)
        check_replacement(source, items)
        written = await self.upsert(ctx, items)
        await self._delete_listed(namespace, source, frozenset(item.id for item in items))
        return written


class PineconeVectorAdmin:
    """A Pinecone store's administrative side: erasing a tenant's namespace."""

    def __init__(self, store: PineconeVectorStore) -> None:
        self._index = store.index
        self._resolver = store.resolver

    async def purge(self, tenant_id: str) -> None:
        """Delete the tenant's namespace and everything in it; a missing one is fine."""
        namespace = tenant_partition(self._resolver, tenant_id)
        with _credentials_checked(), suppress(NotFoundError):
            await self._index.delete_namespace(name=namespace)


@contextmanager
def _credentials_checked() -> Iterator[None]:
    """Turn Pinecone's refusal of the API key into a ``ConfigurationError``.

    A wrong or revoked key is a deployment problem no request can fix; every other
    SDK error (rate limits, outages) propagates unchanged for the caller's retries.
    """
    try:
        yield
    except (UnauthorizedError, ForbiddenError) as exc:
        raise ConfigurationError(
            f"Pinecone refused the API key (HTTP {exc.status_code}): check the deployment's "
            "Pinecone credentials and the index host"
        ) from exc


def _record(item: VectorItem) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(item.metadata)
    metadata.update(source=item.source, chunk=item.chunk, text=item.text)
    return {"id": item.id, "values": item.vector.tolist(), "metadata": metadata}


def _match(record_id: str, score: float, metadata: Mapping[str, Any]) -> Match:
    try:
        source, chunk, text = metadata["source"], metadata["chunk"], metadata["text"]
    except KeyError as exc:
        raise InvalidInput(
            f"Pinecone record {record_id!r} lacks the {exc.args[0]!r} metadata Tenantry writes"
        ) from exc
    extra: dict[str, MetadataValue] = {
        key: value for key, value in metadata.items() if key not in RESERVED_METADATA
    }
    return Match(id=record_id, source=str(source), chunk=int(chunk), text=str(text),
                 score=score, metadata=extra)
