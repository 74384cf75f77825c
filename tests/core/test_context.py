from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from core.context import (
    AuditInfo,
    Budget,
    MonthlyRemaining,
    RunCeilings,
    TenantContext,
    derive_context,
    new_run_id,
)
from core.errors import ContextError


def budget(**overrides: int) -> Budget:
    values = {"token_ceiling": 100, "tool_call_ceiling": 2, "walltime_ceiling_ms": 1000,
              "cost_ceiling_microcents": 5}
    values.update(overrides)
    return Budget(**values)


def context(**overrides: object) -> TenantContext:
    values: dict[str, object] = {
        "tenant_id": "acme",
        "principal_id": "slack:T1:U1",
        "principal_kind": "user",
        "scope": frozenset({"knowledge.search"}),
        "budget": budget(),
        "audit": AuditInfo(run_id=new_run_id(), initiated_at=datetime.now(UTC), initiator="user"),
        "features": {"beta": True},
    }
    values.update(overrides)
    return TenantContext(**values)  # type: ignore[arg-type]


def test_a_valid_context_is_frozen_all_the_way_down() -> None:
    ctx = context()
    with pytest.raises(AttributeError):
        ctx.tenant_id = "other"  # type: ignore[misc]
    assert isinstance(ctx.scope, frozenset)
    assert isinstance(ctx.features, MappingProxyType)
    with pytest.raises(TypeError):
        ctx.features["beta"] = False  # type: ignore[index]
    with pytest.raises(AttributeError):
        ctx.budget.token_ceiling = 10**9  # type: ignore[misc]


def test_features_are_copied_so_the_caller_cannot_change_them_later() -> None:
    flags = {"beta": True}
    ctx = context(features=flags)
    flags["beta"] = False
    assert ctx.features["beta"] is True


@pytest.mark.parametrize(
    "overrides",
    [
        {"tenant_id": ""},
        {"tenant_id": "   "},
        {"principal_id": ""},
        {"principal_kind": "robot"},
        {"scope": "knowledge.search"},
        {"scope": frozenset({""})},
        {"features": {"nested": {"a": 1}}},
    ],
)
def test_invalid_values_are_refused_on_construction(overrides: dict[str, object]) -> None:
    with pytest.raises(ContextError):
        context(**overrides)


@pytest.mark.parametrize("name", ["token_ceiling", "tool_call_ceiling", "walltime_ceiling_ms",
                                  "cost_ceiling_microcents"])
def test_negative_ceilings_are_refused(name: str) -> None:
    with pytest.raises(ContextError, match=name):
        budget(**{name: -1})


def test_naive_timestamps_are_refused_and_offsets_normalised_to_utc() -> None:
    with pytest.raises(ContextError, match="timezone-aware"):
        AuditInfo(run_id="r", initiated_at=datetime(2026, 1, 1), initiator="cron")
    berlin = timezone(timedelta(hours=1))
    info = AuditInfo(run_id="r", initiated_at=datetime(2026, 1, 1, 12, tzinfo=berlin),
                     initiator="cron")
    assert info.initiated_at_iso == "2026-01-01T11:00:00Z"
    with pytest.raises(ContextError):
        AuditInfo(run_id="r", initiated_at=datetime.now(UTC), initiator="nobody")  # type: ignore[arg-type]


def test_derived_budget_is_the_plan_ceiling_capped_by_the_monthly_remainder() -> None:
    ctx = derive_context(
        tenant_id="acme", principal_id="p", principal_kind="service", scope={"a.b"},
        ceilings=RunCeilings(tokens=1000, tool_calls=5, walltime_ms=60_000, cost_microcents=900),
        remaining=MonthlyRemaining(tokens=400, tool_calls=10, cost_microcents=-5),
        initiator="cron", correlation_id="evt-1",
    )
    assert ctx.budget == Budget(token_ceiling=400, tool_call_ceiling=5,
                                walltime_ceiling_ms=60_000, cost_ceiling_microcents=0)
    assert ctx.audit.correlation_id == "evt-1"


def test_run_ids_are_uuid7_and_sort_by_creation() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert all(i[14] == "7" for i in ids)
    assert ids == sorted(ids)
