"""The ``TenantContext``: who is acting, for which tenant, within what budget.

Built once, where authentication was resolved, and passed explicitly to every layer.
It is frozen all the way down (tuples, frozensets and read-only mappings), so no
layer can widen a scope or a budget after the fact. ``derive_context`` is the one
place that turns a tenant, its plan and its month-to-date usage into a context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, get_args

from uuid6 import uuid7

from core.errors import ContextError, InvalidInput

PrincipalKind = Literal["user", "service", "agent"]
Initiator = Literal["user", "cron", "webhook", "agent"]
FeatureValue = bool | int | float | str


_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_id(kind: str, value: str) -> str:
    """Tenant and plan ids are short lowercase slugs: they appear in URLs, logs and
    audit origins.

    Raises:
        InvalidInput: ``value`` is not such a slug.
    """
    if not isinstance(value, str) or not _SLUG.match(value):
        raise InvalidInput(
            f"{kind} id must be 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            f"starting with a letter or digit; got {value!r}"
        )
    return value


def new_run_id() -> str:
    """Return a fresh run id: a UUIDv7, so ids sort by creation time."""
    return str(uuid7())


def _require_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ContextError(f"{name} must be a non-empty string, got {value!r}")


@dataclass(frozen=True, slots=True)
class Budget:
    """Per-run ceilings. Zero is a valid ceiling: nothing of that kind may be spent."""

    token_ceiling: int
    tool_call_ceiling: int
    walltime_ceiling_ms: int
    cost_ceiling_microcents: int

    def __post_init__(self) -> None:
        for name in (
            "token_ceiling",
            "tool_call_ceiling",
            "walltime_ceiling_ms",
            "cost_ceiling_microcents",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ContextError(f"budget.{name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class AuditInfo:
    """What the audit log needs to tie every event of a run together."""

    run_id: str
    initiated_at: datetime
    initiator: Initiator
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        _require_id("audit.run_id", self.run_id)
        if not isinstance(self.initiated_at, datetime):
            raise ContextError("audit.initiated_at must be a datetime")
        offset = self.initiated_at.utcoffset()
        if offset is None:
            raise ContextError("audit.initiated_at must be timezone-aware (UTC)")
        if offset.total_seconds() != 0:
            object.__setattr__(self, "initiated_at", self.initiated_at.astimezone(UTC))
        if self.initiator not in get_args(Initiator):
            raise ContextError(f"audit.initiator must be one of {get_args(Initiator)}")
        if self.correlation_id is not None:
            _require_id("audit.correlation_id", self.correlation_id)

    @property
    def initiated_at_iso(self) -> str:
        """``initiated_at`` as ISO-8601 in UTC, as the reference schema writes it."""
        return self.initiated_at.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TenantContext:
    """The immutable tenancy of one run.

    Attributes:
        tenant_id: The SaaS tenant the work is for.
        principal_id: Who the work is on behalf of (e.g. ``slack:T123:U456``).
        principal_kind: ``user``, ``service`` or ``agent``.
        scope: Capability names this run may use (plan licences within the
            principal's roles).
        budget: The run's ceilings.
        audit: Run id, correlation id, start time and initiator.
        features: The tenant's feature flags, read-only.
    """

    tenant_id: str
    principal_id: str
    principal_kind: PrincipalKind
    scope: frozenset[str]
    budget: Budget
    audit: AuditInfo
    features: Mapping[str, FeatureValue] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        _require_id("tenant_id", self.tenant_id)
        _require_id("principal_id", self.principal_id)
        if self.principal_kind not in get_args(PrincipalKind):
            raise ContextError(f"principal_kind must be one of {get_args(PrincipalKind)}")
        if isinstance(self.scope, str) or not isinstance(self.scope, Iterable):
            raise ContextError("scope must be a collection of capability names")
        scope = frozenset(self.scope)
        for name in scope:
            _require_id("scope entry", name)
        object.__setattr__(self, "scope", scope)
        if not isinstance(self.budget, Budget):
            raise ContextError("budget must be a Budget")
        if not isinstance(self.audit, AuditInfo):
            raise ContextError("audit must be an AuditInfo")
        features = dict(self.features)
        for key, value in features.items():
            _require_id("feature name", key)
            if not isinstance(value, bool | int | float | str):
                raise ContextError(f"feature {key!r} must be a scalar, got {type(value).__name__}")
        object.__setattr__(self, "features", MappingProxyType(features))

    @property
    def run_id(self) -> str:
        """The run id, the key of checkpoints, ledgers and audit events."""
        return self.audit.run_id

    def log_fields(self) -> dict[str, str]:
        """The fields every log line of this run carries."""
        return {"tenant_id": self.tenant_id, "run_id": self.audit.run_id}


@dataclass(frozen=True, slots=True)
class RunCeilings:
    """A plan's per-run ceilings, before the monthly allowance caps them."""

    tokens: int
    tool_calls: int
    walltime_ms: int
    cost_microcents: int


@dataclass(frozen=True, slots=True)
class MonthlyRemaining:
    """What is left of a tenant's monthly allowance."""

    tokens: int
    tool_calls: int
    cost_microcents: int

    @property
    def exhausted(self) -> str | None:
        """The first allowance that is spent, or ``None``."""
        for name in ("tokens", "cost_microcents", "tool_calls"):
            if getattr(self, name) <= 0:
                return name
        return None


def derive_context(
    *,
    tenant_id: str,
    principal_id: str,
    principal_kind: PrincipalKind,
    scope: Iterable[str],
    ceilings: RunCeilings,
    remaining: MonthlyRemaining,
    initiator: Initiator,
    features: Mapping[str, FeatureValue] | None = None,
    correlation_id: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> TenantContext:
    """Build the context of a run: the plan's ceilings capped by the monthly remainder.

    A tool-call remainder of zero still lets a run answer without tools, so only
    tokens and cost refuse a run outright (the caller decides that); here a spent
    remainder simply yields a zero ceiling.
    """
    budget = Budget(
        token_ceiling=max(0, min(ceilings.tokens, remaining.tokens)),
        tool_call_ceiling=max(0, min(ceilings.tool_calls, remaining.tool_calls)),
        walltime_ceiling_ms=ceilings.walltime_ms,
        cost_ceiling_microcents=max(0, min(ceilings.cost_microcents, remaining.cost_microcents)),
    )
    audit = AuditInfo(
        run_id=run_id or new_run_id(),
        initiated_at=now or datetime.now(UTC),
        initiator=initiator,
        correlation_id=correlation_id,
    )
    return TenantContext(
        tenant_id=tenant_id,
        principal_id=principal_id,
        principal_kind=principal_kind,
        scope=frozenset(scope),
        budget=budget,
        audit=audit,
        features=MappingProxyType(dict(features or {})),
    )
