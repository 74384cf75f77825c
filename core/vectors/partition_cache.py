"""Partition matrices kept in memory between searches, bounded by bytes, least recently used.

Per ``(tenant_id, partition, dim)``, the chunk ids and their unit vectors as one float32
matrix, with the partition's revision when they were read. The embedded store serves an
entry only while the database still holds that revision: the cache never decides
freshness itself. The tenant id is part of every key, so two tenants whose resolvers
gave the same partition name would still never share an entry.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from core.errors import ConfigurationError

DEFAULT_CACHE_BYTES: Final = 256 * 2**20


@dataclass(frozen=True, slots=True)
class PartitionKey:
    """Which matrix: a tenant's partition, restricted to vectors of one dimension."""

    tenant_id: str
    partition: str
    dim: int


@dataclass(frozen=True, slots=True, eq=False)
class PartitionMatrix:
    """The ids and unit vectors of a partition as read at ``revision``; row ``i`` is ``ids[i]``.

    The matrix is read-only, shared by every search served from the cache.
    """

    revision: int
    ids: tuple[str, ...]
    matrix: npt.NDArray[np.float32]
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        # Counted once: the matrix plus the id strings and their tuple, which for short
        # vectors weigh as much as the matrix does.
        size = self.matrix.nbytes + sys.getsizeof(self.ids)
        object.__setattr__(self, "nbytes", size + sum(map(sys.getsizeof, self.ids)))


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Hits, misses and evictions since the cache was built; entries and bytes held now."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    max_bytes: int


class PartitionCache:
    """A least-recently-used map of partition matrices, bounded by their total bytes.

    Searches run in the database's worker threads, hence the lock; two that load the
    same cold partition at once both offer their matrix, and the newer revision stays.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ConfigurationError(f"the vector cache bound must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[PartitionKey, PartitionMatrix] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: PartitionKey, revision: int | None) -> PartitionMatrix | None:
        """The matrix cached for ``key`` if read at ``revision``; a stale one is dropped."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and revision is not None and entry.revision == revision:
                self._entries.move_to_end(key)
                self._hits += 1
                return entry
            if entry is not None:
                self._drop(key)
            self._misses += 1
            return None

    def put(self, key: PartitionKey, entry: PartitionMatrix) -> None:
        """Keep ``entry`` for ``key``, evicting the least recently used to stay in bounds.

        An entry read at an older revision than the one held is ignored (a slow load
        finishing after a faster, newer one); one larger than the bound is not kept.
        """
        with self._lock:
            held = self._entries.get(key)
            if held is not None and held.revision > entry.revision:
                return
            if held is not None:
                self._drop(key)
            if entry.nbytes > self.max_bytes:
                return
            while self._bytes + entry.nbytes > self.max_bytes:
                self._drop(next(iter(self._entries)))
                self._evictions += 1
            self._entries[key] = entry
            self._bytes += entry.nbytes

    def stats(self) -> CacheStats:
        """The counters and current size."""
        return CacheStats(hits=self._hits, misses=self._misses, evictions=self._evictions,
                          entries=len(self._entries), bytes=self._bytes, max_bytes=self.max_bytes)

    def _drop(self, key: PartitionKey) -> None:
        self._bytes -= self._entries.pop(key).nbytes
