"""The vector store contract: chunks partitioned per tenant, and how a partition is named.

Every store method takes the ``TenantContext`` first and derives the tenant's
partition from it through a ``PartitionResolver``; nothing falls back to a default
partition, and no store method takes a bare tenant id. Erasing a tenant is a
``VectorAdmin``'s, which only operators' commands hold.

A chunk's id is its percent-encoded source, ``#`` and its index (``chunk_id``), so
``<source>#`` is a prefix no other source's ids share: a store can delete a document by
id prefix, and re-adding a document replaces its chunks instead of duplicating them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from core.context import TenantContext
from core.errors import ConfigurationError, InvalidInput

MetadataValue = str | int | float | bool | list[str]
Vector = npt.NDArray[np.float32]

RESERVED_METADATA: Final = frozenset({"source", "chunk", "text"})
MAX_ID_LENGTH: Final = 512
MAX_PARTITION_LENGTH: Final = 200
MAX_TOP_K: Final = 1000
DEFAULT_PARTITIONS: Final = frozenset({"", "__default__", "default", "none", "null"})
PROBE_TENANTS: Final = (
    "acme", "acme-", "acme_", "acme.", "acme-corp", "acme_corp", "acme.corp", "acmecorp",
    "Acme", "ACME", "0", "00", "a", "b", "tenant-acme", "default", "x" * 64, "x" * 63 + "y",
)


class NoTenant(InvalidInput):
    """Memory was asked for without a tenant: refused, never defaulted."""


class BadPartition(ConfigurationError):
    """The partition resolver gave no usable, tenant-specific partition."""


def chunk_id(source: str, chunk: int) -> str:
    """The id of chunk ``chunk`` of ``source``: ASCII, unique per (source, chunk)."""
    return f"{source_prefix(source)}{chunk}"


def source_prefix(source: str) -> str:
    """The id prefix shared by every chunk of ``source`` and by no other source's."""
    return quote(source, safe="") + "#"


def unit_vector(values: npt.ArrayLike, *, what: str = "vector") -> Vector:
    """``values`` as a finite, non-zero float32 vector of length one.

    Stores keep unit vectors so that cosine similarity is a dot product; a zero
    vector has no direction, so it is refused rather than matched arbitrarily.
    """
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise InvalidInput(f"{what} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidInput(f"{what} must hold finite numbers only")
    norm = float(np.linalg.norm(array))
    if norm == 0.0 or not math.isfinite(norm):
        raise InvalidInput(f"{what} must not be the zero vector")
    return np.ascontiguousarray(array / norm, dtype=np.float32)


def _check_metadata(metadata: Mapping[str, Any]) -> dict[str, MetadataValue]:
    checked: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key in RESERVED_METADATA:
            raise InvalidInput(
                f"metadata key {key!r} is empty or reserved ({sorted(RESERVED_METADATA)})"
            )
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"metadata {key!r}: lists may hold strings only")
        if not isinstance(value, list | str | int | float | bool):
            raise InvalidInput(
                f"metadata {key!r} must be a string, number, boolean or list of strings"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"metadata {key!r} must be finite")
        checked[key] = list(value) if isinstance(value, list) else value
    return checked


@dataclass(frozen=True, slots=True, eq=False)
class VectorItem:
    """One chunk to store: where it comes from, its text, its embedding, extra metadata.

    Attributes:
        source: The document it was cut from (a path or name); deletions go by it.
        chunk: The chunk's index within the source, from 0.
        text: The chunk's text, returned with every match.
        vector: Its embedding; stored normalised to unit length.
        metadata: Extra scalar fields (``source``, ``chunk`` and ``text`` are reserved).
    """

    source: str
    chunk: int
    text: str
    vector: Vector
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_source(self.source)
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 0:
            raise InvalidInput(f"chunk index must be a non-negative integer, got {self.chunk!r}")
        if len(chunk_id(self.source, self.chunk)) > MAX_ID_LENGTH:
            raise InvalidInput(f"source name too long for a chunk id: {self.source[:80]!r}...")
        if not isinstance(self.text, str):
            raise InvalidInput("a chunk's text must be a string")
        object.__setattr__(self, "vector", unit_vector(self.vector))
        object.__setattr__(self, "metadata", MappingProxyType(_check_metadata(self.metadata)))

    @property
    def id(self) -> str:
        """The chunk's id, ``chunk_id(source, chunk)``: upserts replace on it."""
        return chunk_id(self.source, self.chunk)


@dataclass(frozen=True, slots=True)
class Match:
    """A stored chunk found by a search, with its cosine similarity to the query."""

    id: str
    source: str
    chunk: int
    text: str
    score: float
    metadata: Mapping[str, MetadataValue]


class PartitionResolver(Protocol):
    """Names the partition (table partition, Pinecone namespace) of a tenant.

    It must be deterministic, injective (two tenants never share a partition) and
    raise for an empty tenant; ``check_resolver`` probes for all three.
    """

    def partition(self, tenant_id: str) -> str:
        """The partition of ``tenant_id``."""


@dataclass(frozen=True, slots=True)
class TenantPartitions:
    """The default resolver: ``<prefix><tenant_id>``, injective for a fixed prefix."""

    prefix: str = "tenant-"

    def partition(self, tenant_id: str) -> str:
        """``tenant-<tenant_id>``; an empty or padded tenant id is refused."""
        if not isinstance(tenant_id, str) or not tenant_id or tenant_id != tenant_id.strip():
            raise NoTenant(f"no partition without a tenant id, got {tenant_id!r}")
        return self.prefix + tenant_id


def tenant_partition(resolver: PartitionResolver, tenant_id: str) -> str:
    """The partition of a tenant named by id, vetted on every call.

    ``NoTenant`` for an empty ``tenant_id``; ``BadPartition`` when the resolver answers
    with nothing, with a default partition, or with one a backend could not name.
    """
    partition: object = resolver.partition(require_tenant_id(tenant_id))
    if not isinstance(partition, str) or not partition.strip():
        raise BadPartition(f"the partition resolver gave no partition for tenant {tenant_id!r}")
    if partition.strip().lower() in DEFAULT_PARTITIONS:
        raise BadPartition(
            f"the partition resolver gave a default partition ({partition!r}) for tenant "
            f"{tenant_id!r}: there is no default partition"
        )
    if len(partition) > MAX_PARTITION_LENGTH or not partition.isascii() or "\x00" in partition:
        raise BadPartition(
            f"partition {partition[:40]!r} of tenant {tenant_id!r} must be ASCII, without NUL, "
            f"at most {MAX_PARTITION_LENGTH} characters"
        )
    return partition


def resolve_partition(resolver: PartitionResolver, ctx: TenantContext) -> tuple[str, str]:
    """The tenant id and partition of a run's context, checked on every call.

    A bare tenant id is refused (``NoTenant``): retrieval is a run's, and only an
    administrative purge (``VectorAdmin``) may name a tenant by id.
    """
    if not isinstance(ctx, TenantContext):
        raise NoTenant("memory is reached with a run's TenantContext, never a bare tenant id")
    return ctx.tenant_id, tenant_partition(resolver, ctx.tenant_id)


def require_tenant_id(tenant_id: str) -> str:
    """``tenant_id`` if it names a tenant (else ``NoTenant``): there is no default tenant."""
    if not isinstance(tenant_id, str) or not tenant_id.strip():
        raise NoTenant("memory needs a tenant: no tenant id, and no default")
    return tenant_id


def check_resolver(resolver: PartitionResolver, tenant_ids: Iterable[str] = ()) -> None:
    """Refuse, at service start, a resolver that could merge tenants or default them.

    Injectivity cannot be proven by probing, so this probes the ids that lossy
    mappings (case folding, punctuation stripping, truncation) tend to merge, plus
    the deployment's real ``tenant_ids``; it also checks that the resolver refuses an
    empty tenant and answers the same each time.
    """
    for blank in ("", " "):
        try:
            answer = resolver.partition(blank)
        except (InvalidInput, ConfigurationError):
            continue
        raise ConfigurationError(
            f"the partition resolver gave {answer!r} for an empty tenant; it must refuse"
        )
    owners: dict[str, str] = {}
    for tenant_id in dict.fromkeys([*PROBE_TENANTS, *tenant_ids]):
        partition = tenant_partition(resolver, tenant_id)
        if resolver.partition(tenant_id) != partition:
            raise ConfigurationError(f"the partition of tenant {tenant_id!r} is not stable")
        other = owners.setdefault(partition, tenant_id)
        if other != tenant_id:
            raise ConfigurationError(
                f"tenants {other!r} and {tenant_id!r} share partition {partition!r}"
            )


class VectorStore(Protocol):
    """Chunks and their embeddings, one partition per tenant.

    Every method resolves the tenant's partition first, and refuses before any I/O
    when it cannot.
    """

    async def upsert(self, ctx: TenantContext, items: Sequence[VectorItem]) -> int:
        """Store chunks in the tenant's partition, replacing any with the same id."""

    async def query(self, ctx: TenantContext, vector: npt.ArrayLike, top_k: int) -> list[Match]:
        """The ``top_k`` chunks of the tenant's partition closest to ``vector``, best first."""

    async def delete_source(self, ctx: TenantContext, source: str) -> int:
        """Delete every chunk of ``source`` in the tenant's partition; how many went."""

    async def replace_source(self, ctx: TenantContext, source: str,
                             items: Sequence[VectorItem]) -> int:
        """Make ``items`` the whole of ``source``; how many were stored.

        Searches see the old version or the new one, never the new one in part with
        the old one gone.
        """


class VectorAdmin(Protocol):
    """The administrative side of a vector store: what only an operator's command does.

    Kept apart from ``VectorStore`` so that what capabilities are given (the store,
    through ``Knowledge``) cannot erase a tenant, or name one by id.
    """

    async def purge(self, tenant_id: str) -> None:
        """Delete everything the tenant has stored; a tenant with nothing is fine."""


def check_query(vector: npt.ArrayLike, top_k: int) -> Vector:
    """The query as a unit vector, once ``top_k`` is known to be from 1 to ``MAX_TOP_K``."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
    return unit_vector(vector, what="query vector")


def check_source(source: str) -> None:
    """Refuse a source that names no document (not a non-empty string)."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidInput("a source must be a non-empty string")


def check_replacement(source: str, items: Sequence[VectorItem]) -> None:
    """Refuse a replacement of ``source`` that holds chunks of another source."""
    check_source(source)
    if any(item.source != source for item in items):
        raise InvalidInput(f"every chunk replacing {source!r} must be of that source")
