"""Tests for core.vectors.partition_cache: revisions, recency and the byte bound."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigurationError
from core.vectors.partition_cache import PartitionCache, PartitionKey, PartitionMatrix


def matrix(revision: int, rows: int = 4, dim: int = 8) -> PartitionMatrix:
    ids = tuple(f"doc#{i}" for i in range(rows))
    return PartitionMatrix(revision, ids, np.ones((rows, dim), dtype=np.float32))


def key(tenant_id: str, partition: str = "kb") -> PartitionKey:
    return PartitionKey(tenant_id, partition, 8)


def test_an_entry_is_served_only_at_the_revision_it_was_read_at() -> None:
    cache = PartitionCache()
    entry = matrix(3)
    cache.put(key("acme"), entry)
    assert cache.get(key("acme"), 3) is entry
    assert cache.get(key("acme"), 4) is None
    # The stale entry went with the miss; the old revision does not bring it back.
    assert cache.get(key("acme"), 3) is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.bytes) == (1, 2, 0, 0)


def test_a_partition_without_revision_is_never_served() -> None:
    cache = PartitionCache()
    cache.put(key("acme"), matrix(1))
    assert cache.get(key("acme"), None) is None


def test_the_tenant_is_part_of_the_key() -> None:
    cache = PartitionCache()
    cache.put(key("acme"), matrix(1))
    assert cache.get(key("globex"), 1) is None
    assert cache.get(PartitionKey("acme", "kb", 16), 1) is None
    assert cache.get(key("acme"), 1) is not None


def test_a_slow_load_of_an_older_revision_does_not_replace_a_newer_one() -> None:
    cache = PartitionCache()
    newer, older, same = matrix(5), matrix(4), matrix(5)
    cache.put(key("acme"), newer)
    cache.put(key("acme"), older)
    assert cache.get(key("acme"), 5) is newer
    cache.put(key("acme"), same)
    assert cache.get(key("acme"), 5) is same
    assert cache.stats().bytes == same.nbytes


def test_the_least_recently_used_entry_goes_first_when_the_bound_is_reached() -> None:
    size = matrix(1).nbytes
    cache = PartitionCache(max_bytes=2 * size)
    cache.put(key("a"), matrix(1))
    cache.put(key("b"), matrix(1))
    assert cache.get(key("a"), 1) is not None
    cache.put(key("c"), matrix(1))
    assert cache.get(key("b"), 1) is None
    assert cache.get(key("a"), 1) is not None
    assert cache.get(key("c"), 1) is not None
    stats = cache.stats()
    assert (stats.evictions, stats.entries, stats.bytes, stats.max_bytes) == (
        1, 2, 2 * size, 2 * size)


def test_an_entry_larger_than_the_bound_is_not_kept() -> None:
    cache = PartitionCache(max_bytes=matrix(1).nbytes - 1)
    cache.put(key("a"), matrix(1, rows=1))
    cache.put(key("b"), matrix(1))
    assert cache.get(key("b"), 1) is None
    assert cache.get(key("a"), 1) is not None
    assert cache.stats().evictions == 0


def test_a_zero_bound_keeps_nothing_and_a_negative_one_is_refused() -> None:
    cache = PartitionCache(max_bytes=0)
    cache.put(key("a"), matrix(1))
    assert cache.stats().entries == 0
    with pytest.raises(ConfigurationError):
        PartitionCache(max_bytes=-1)


def test_the_size_counts_the_ids_as_well_as_the_matrix() -> None:
    entry = matrix(1, rows=100)
    assert entry.nbytes > entry.matrix.nbytes + 100 * len("doc#00")
