"""Tests for core.vectors.base: partitions, their vetting, chunk ids and item checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.context import MonthlyRemaining, RunCeilings, derive_context
from core.errors import ConfigurationError, InvalidInput
from core.vectors.base import (
    BadPartition,
    NoTenant,
    TenantPartitions,
    VectorItem,
    check_resolver,
    chunk_id,
    resolve_partition,
    source_prefix,
    tenant_partition,
)

ONE = np.array([1.0, 0.0], dtype=np.float32)


class _Lowercased:
    def partition(self, tenant_id: str) -> str:
        if not tenant_id.strip():
            raise NoTenant("no tenant")
        return "t-" + tenant_id.lower()


class _Slugged:
    def partition(self, tenant_id: str) -> str:
        if not tenant_id.strip():
            raise NoTenant("no tenant")
        return "t-" + "".join(c for c in tenant_id if c.isalnum())


class _Truncated:
    def partition(self, tenant_id: str) -> str:
        if not tenant_id.strip():
            raise NoTenant("no tenant")
        return "t-" + tenant_id[:8]


class _Lenient:
    def partition(self, tenant_id: str) -> str:
        return "t-" + tenant_id


class _Shared:
    def partition(self, tenant_id: str) -> str:
        if not tenant_id.strip():
            raise NoTenant("no tenant")
        return "shared"


class _Unstable:
    def __init__(self) -> None:
        self.calls = 0

    def partition(self, tenant_id: str) -> str:
        if not tenant_id.strip():
            raise NoTenant("no tenant")
        self.calls += 1
        return f"t-{tenant_id}-{self.calls}"


def test_the_default_resolver_prefixes_the_tenant() -> None:
    ctx = derive_context(
        tenant_id="acme", principal_id="u1", principal_kind="user", scope=(),
        ceilings=RunCeilings(1, 1, 1, 1), remaining=MonthlyRemaining(1, 1, 1), initiator="user",
    )
    assert resolve_partition(TenantPartitions(), ctx) == ("acme", "tenant-acme")
    assert tenant_partition(TenantPartitions(), "globex") == "tenant-globex"
    with pytest.raises(NoTenant, match="never a bare tenant id"):
        resolve_partition(TenantPartitions(), "globex")  # type: ignore[arg-type]
    check_resolver(TenantPartitions(), ["acme", "globex"])


@pytest.mark.parametrize("tenant", ["", "   ", None])
def test_no_tenant_resolves_to_nothing(tenant: Any) -> None:
    with pytest.raises(NoTenant):
        tenant_partition(TenantPartitions(), tenant)
    with pytest.raises(NoTenant):
        TenantPartitions().partition(tenant)


@pytest.mark.parametrize(("resolver", "reason"), [
    (_Lowercased(), "share partition"),
    (_Slugged(), "share partition"),
    (_Truncated(), "share partition"),
    (_Shared(), "share partition"),
    (_Lenient(), "empty tenant"),
    (_Unstable(), "not stable"),
    (TenantPartitions(prefix=""), "default partition"),
])
def test_check_resolver_refuses_resolvers_that_merge_or_default_tenants(
    resolver: Any, reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        check_resolver(resolver)


def test_check_resolver_probes_the_deployments_own_tenants() -> None:
    class _MapsTwo:
        def partition(self, tenant_id: str) -> str:
            if not tenant_id.strip():
                raise NoTenant("no tenant")
            return "t-merged" if tenant_id in ("north-1", "north-2") else "t-" + tenant_id

    check_resolver(_MapsTwo())
    with pytest.raises(ConfigurationError, match="'north-1' and 'north-2'"):
        check_resolver(_MapsTwo(), ["north-1", "north-2"])


@pytest.mark.parametrize("partition", ["", " ", "__default__", "DEFAULT", "é-tenant", "x" * 201])
def test_a_partition_that_is_empty_default_or_unusable_is_refused(partition: str) -> None:
    class _Fixed:
        def partition(self, tenant_id: str) -> str:
            return partition

    with pytest.raises(BadPartition):
        tenant_partition(_Fixed(), "acme")


@given(st.text(min_size=1), st.integers(0, 10**6), st.text(min_size=1), st.integers(0, 10**6))
def test_chunk_ids_are_ascii_and_a_sources_prefix_covers_its_own_ids_only(
    source: str, chunk: int, other: str, other_chunk: int
) -> None:
    assert chunk_id(source, chunk).isascii()
    assert chunk_id(source, chunk).startswith(source_prefix(source))
    assert chunk_id(other, other_chunk).startswith(source_prefix(source)) == (other == source)
    if (source, chunk) != (other, other_chunk):
        assert chunk_id(source, chunk) != chunk_id(other, other_chunk)


def test_an_item_is_stored_as_a_unit_vector_with_a_derived_id() -> None:
    item = VectorItem("docs/a b#1.md", 2, "text", np.array([3.0, 4.0], dtype=np.float32))
    assert item.id == "docs%2Fa%20b%231.md#2"
    assert item.vector.dtype == np.float32
    assert np.allclose(item.vector, [0.6, 0.8])


@pytest.mark.parametrize(("fields", "message"), [
    ({"source": ""}, "source"),
    ({"source": "   "}, "source"),
    ({"source": "é" * 100}, "too long"),
    ({"chunk": -1}, "chunk index"),
    ({"chunk": True}, "chunk index"),
    ({"text": None}, "text"),
    ({"vector": np.zeros(2, dtype=np.float32)}, "zero vector"),
    ({"vector": np.array([np.nan, 1.0], dtype=np.float32)}, "finite"),
    ({"vector": np.ones((2, 2), dtype=np.float32)}, "1-D"),
    ({"metadata": {"source": "x"}}, "reserved"),
    ({"metadata": {"text": "x"}}, "reserved"),
    ({"metadata": {"n": {"nested": 1}}}, "string, number"),
    ({"metadata": {"tags": [1, 2]}}, "strings only"),
    ({"metadata": {"x": float("inf")}}, "finite"),
])
def test_a_malformed_item_is_refused(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"source": "s", "chunk": 0, "text": "t", "vector": ONE}
    values.update(fields)
    with pytest.raises(InvalidInput, match=message):
        VectorItem(**values)
