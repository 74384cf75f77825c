"""Authorisation: which capabilities a principal may use, per tenant, decided per run.

pycasbin RBAC with domains, the domain being the tenant. Every rule lives in the
``casbin_rule`` table of the app database, read and written by
``casbin_async_sqlalchemy_adapter`` through a session on *our* connection, so policy
writes join the caller's transaction. A run loads only its own tenant's rules into a
fresh enforcer (``Authorizer.for_run``) that dies with the run: no decision outlives
it, and a revoke takes effect at the next run. Reading (a run's authoriser, a
principal's roles) loads the rules with one query into an enforcer without the
adapter; writing goes through the adapter. The rules, in casbin's columns::

    ptype  v0                v1           v2                   v3
    p      role:<role>       <tenant>     <capability pattern> use
    g      <principal>       role:<role>  <tenant>

Roles carry the ``role:`` prefix and principal ids may not, because casbin lets any
subject stand for itself: a principal whose id were ``admin`` would *be* the role.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType, SimpleNamespace
from typing import Any

import casbin
from casbin.persist import load_policy_line
from casbin_async_sqlalchemy_adapter import Adapter
from casbin_async_sqlalchemy_adapter.adapter import CasbinRule
from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.context import TenantContext
from core.db.engine import Database
from core.db.schema import tenants
from core.errors import InvalidInput, NotFound, ToolRefused
from core.tenants import check_id

# The default policy, copied into every tenant by ``seed_tenant``. Patterns follow
# casbin's keyMatch (``knowledge.*``), except that a bare ``*`` never covers the
# ADMINISTRATIVE namespaces: those are granted by name. That is how "member may use
# everything except audit and role administration" stays true for capabilities added
# later, while roles still only ever add rights (no deny rule can take away what
# another role of the same principal grants).
ADMINISTRATIVE: tuple[str, ...] = ("audit.*", "roles.*")
DEFAULT_PERMISSIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "owner": ("*", "audit.*", "roles.*"),
    "admin": ("*", "audit.*", "roles.*"),
    "member": ("*",),
    "guest": ("knowledge.search", "budget.status"),
})
ROLES: tuple[str, ...] = tuple(DEFAULT_PERMISSIONS)
ACTION = "use"
ROLE_PREFIX = "role:"

_MATCHER = (
    "g(r.sub, p.sub, r.dom) && r.dom == p.dom"
    " && capabilityMatch(r.obj, p.obj) && r.act == p.act"
)
_MODEL = f"""
[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = {_MATCHER}
"""

_RULES = CasbinRule.__table__
_TENANT_RULES = (
    select(*(_RULES.c[name] for name in ("ptype", "v0", "v1", "v2", "v3", "v4", "v5")))
    .where(or_(
        and_(_RULES.c.ptype == "p", _RULES.c.v1 == bindparam("tenant")),
        and_(_RULES.c.ptype == "g", _RULES.c.v2 == bindparam("tenant")),
    ))
    .order_by(_RULES.c.id)
)

# casbin re-parses stored rules from "p, a, b" text: these characters would split or
# unbalance a rule, so they never enter a principal id (nor does whitespace).
_PRINCIPAL = re.compile(r"^[^\s,()\[\]]{1,200}$")


def capability_matches(capability: str, pattern: str) -> bool:
    """Whether ``pattern`` covers ``capability``: keyMatch, minus administrative for ``*``."""
    if pattern == "*" and any(capability_matches(capability, p) for p in ADMINISTRATIVE):
        return False
    star = pattern.find("*")
    return capability == pattern if star < 0 else capability.startswith(pattern[:star])


def _check_role(role: str) -> str:
    if role not in DEFAULT_PERMISSIONS:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return ROLE_PREFIX + role


def _is_principal(principal_id: str) -> bool:
    return bool(_PRINCIPAL.match(principal_id)) and not principal_id.startswith(ROLE_PREFIX)


def _role_order(role: str) -> tuple[int, str]:
    return (ROLES.index(role) if role in ROLES else len(ROLES), role)


def _rule_filter(**columns: list[str]) -> SimpleNamespace:
    """The adapter's filter: every non-empty list becomes ``column IN (...)``, all ANDed."""
    empty: dict[str, list[str]] = {c: [] for c in ("ptype", "v0", "v1", "v2", "v3", "v4", "v5")}
    return SimpleNamespace(**(empty | columns))


class _TenantPolicy:
    """One tenant's rules in a fresh enforcer: the typed face of the untyped casbin API."""

    def __init__(self, enforcer: Any, tenant_id: str) -> None:
        self._enforcer = enforcer
        self.tenant_id = tenant_id

    def allows(self, subject: str, capability: str) -> bool:
        return bool(self._enforcer.enforce(subject, self.tenant_id, capability, ACTION))

    def grants(self) -> list[tuple[str, str]]:
        """``(principal, role)`` pairs, without duplicates (concurrent grants may race)."""
        rows = self._enforcer.get_filtered_named_grouping_policy("g", 2, self.tenant_id)
        pairs = {(str(row[0]), str(row[1]).removeprefix(ROLE_PREFIX)) for row in rows}
        return sorted(pairs, key=lambda pair: (pair[0], _role_order(pair[1])))

    def rules(self) -> tuple[tuple[str, ...], ...]:
        p_rules = [("p", *map(str, row)) for row in self._enforcer.get_policy()]
        g_rules = [("g", *map(str, row)) for row in self._enforcer.get_grouping_policy()]
        return tuple(p_rules + g_rules)

    async def add_permission(self, role: str, pattern: str) -> bool:
        rule = [ROLE_PREFIX + role, self.tenant_id, pattern, ACTION]
        return bool(await self._enforcer.add_policy(rule))

    async def add_grant(self, principal_id: str, subject: str) -> bool:
        rule = [principal_id, subject, self.tenant_id]
        return bool(await self._enforcer.add_grouping_policy(rule))

    async def remove_grant(self, principal_id: str, subject: str) -> bool:
        rule = [principal_id, subject, self.tenant_id]
        return bool(await self._enforcer.remove_grouping_policy(rule))


@asynccontextmanager
async def _adapter_on(conn: AsyncConnection) -> AsyncIterator[Any]:
    """The adapter, writing through a session that joins ``conn``'s transaction.

    The adapter commits nothing with an external session, and stages some inserts
    without flushing them: the flush here makes them part of the caller's commit.
    """
    session = AsyncSession(bind=conn)
    try:
        # filtered=True: the adapter must never be asked for every tenant's rules.
        yield Adapter(conn.engine, db_session=session, filtered=True)
        await session.flush()
    finally:
        await session.close()


@asynccontextmanager
async def _tenant_policy(conn: AsyncConnection, tenant_id: str) -> AsyncIterator[_TenantPolicy]:
    """Load one tenant's rules, and only those, into a new enforcer.

    The adapter's filter ANDs its conditions and the tenant sits in a different column
    for each rule type (``p``: v1, ``g``: v2), so it takes two filtered loads; both
    run in ``conn``'s transaction, which keeps them consistent with each other.
    """
    async with _adapter_on(conn) as adapter:
        enforcer = casbin.AsyncEnforcer(casbin.Enforcer.new_model(text=_MODEL), adapter)
        enforcer.add_function("capabilityMatch", capability_matches)
        await enforcer.load_filtered_policy(_rule_filter(ptype=["p"], v1=[tenant_id]))
        await enforcer.load_increment_filtered_policy(_rule_filter(ptype=["g"], v2=[tenant_id]))
        yield _TenantPolicy(enforcer, tenant_id)


async def _read_policy(db: Database, tenant_id: str) -> _TenantPolicy:
    """One tenant's rules, in one read-only query, in an enforcer for reading."""
    rows = await db.run(lambda conn: _policy_rows_in(conn, tenant_id), readonly=True)
    return _policy_of(rows, tenant_id)


def _policy_rows_in(conn: Connection, tenant_id: str) -> list[Any]:
    """One tenant's rules as stored, oldest first, in one query."""
    return list(conn.execute(_TENANT_RULES, {"tenant": tenant_id}).all())


def _policy_of(rows: Iterable[Any], tenant_id: str) -> _TenantPolicy:
    """The rules in an enforcer of their own, for reading.

    They go into the model exactly as the adapter would put them (the same rule
    lines, in the same order), without its session; the enforcer has no adapter, so
    it cannot write.
    """
    enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=_MODEL))
    enforcer.add_function("capabilityMatch", capability_matches)
    model = enforcer.get_model()
    for row in rows:
        values = list(itertools.takewhile(lambda value: value is not None, row))
        load_policy_line(", ".join(values), model)
    enforcer.build_role_links()
    return _TenantPolicy(enforcer, tenant_id)


async def _require_tenant(conn: AsyncConnection, tenant_id: str, *, lock: bool) -> None:
    """Refuse an unknown tenant; with ``lock``, serialise this tenant's policy writes.

    The row lock keeps two concurrent grants from both inserting the same rule on
    PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers.
    """
    check_id("tenant", tenant_id)
    query = select(tenants.c.id).where(tenants.c.id == tenant_id)
    if await conn.scalar(query.with_for_update() if lock else query) is None:
        raise NotFound(f"no tenant {tenant_id!r}")


async def seed_tenant(db: Database, tenant_id: str) -> int:
    """Give a new tenant the default roles' permissions; idempotent.

    Returns:
        How many rules were added (0 when the tenant had them all already).
    """
    added = 0
    async with db.begin() as conn:
        await _require_tenant(conn, tenant_id, lock=True)
        async with _tenant_policy(conn, tenant_id) as policy:
            for role, patterns in DEFAULT_PERMISSIONS.items():
                for pattern in patterns:
                    added += await policy.add_permission(role, pattern)
    return added


async def grant(db: Database, tenant_id: str, principal_id: str, role: str) -> bool:
    """Give a principal a role in one tenant. Returns whether it was new.

    Raises:
        InvalidInput: unknown role, or a malformed tenant or principal id.
        NotFound: no such tenant.
    """
    subject = _check_role(role)
    if not _is_principal(principal_id):
        raise InvalidInput(
            f"principal id must be 1-200 characters without whitespace, ',', brackets or "
            f"a leading {ROLE_PREFIX!r}; got {principal_id!r}"
        )
    async with db.begin() as conn:
        await _require_tenant(conn, tenant_id, lock=True)
        async with _tenant_policy(conn, tenant_id) as policy:
            return await policy.add_grant(principal_id, subject)


async def revoke(db: Database, tenant_id: str, principal_id: str, role: str) -> bool:
    """Take a role away in one tenant. Returns whether the principal had it.

    Runs already under way keep the policy they loaded; the next run will not.
    """
    subject = _check_role(role)
    async with db.begin() as conn:
        await _require_tenant(conn, tenant_id, lock=True)
        async with _tenant_policy(conn, tenant_id) as policy:
            return await policy.remove_grant(principal_id, subject)


async def roles_of(db: Database, tenant_id: str, principal_id: str) -> list[str]:
    """The roles a principal holds in one tenant, most powerful first."""
    check_id("tenant", tenant_id)
    policy = await _read_policy(db, tenant_id)
    return [role for principal, role in policy.grants() if principal == principal_id]


async def list_grants(db: Database, tenant_id: str) -> list[tuple[str, str]]:
    """Every ``(principal, role)`` of one tenant, by principal.

    Raises:
        NotFound: no such tenant (rather than an empty list that hides a typo).
    """
    async with db.read() as conn:
        await _require_tenant(conn, tenant_id, lock=False)
        rows = await conn.run_sync(lambda sync: _policy_rows_in(sync, tenant_id))
    return _policy_of(rows, tenant_id).grants()


async def purge_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    """Delete every rule of one tenant, inside the caller's deletion transaction."""
    check_id("tenant", tenant_id)
    async with _adapter_on(conn) as adapter:
        await adapter.remove_filtered_policy("p", "p", 1, tenant_id)
        await adapter.remove_filtered_policy("g", "g", 2, tenant_id)


class Authorizer:
    """The decisions of one run: its principal's rights in its tenant, loaded once.

    The agent acting for a principal is that principal here; there is no agent
    identity with rights of its own. Build it with ``for_run``.
    """

    def __init__(
        self, ctx: TenantContext, policy: _TenantPolicy, extra_roles: Iterable[str] = ()
    ) -> None:
        if policy.tenant_id != ctx.tenant_id:
            raise InvalidInput("an Authorizer needs the policy of its run's tenant")
        self._ctx = ctx
        self._policy = policy
        self._decisions: dict[str, bool] = {}
        self._extra = tuple(sorted(
            {_check_role(r).removeprefix(ROLE_PREFIX) for r in extra_roles}, key=_role_order
        ))

    @classmethod
    async def for_run(
        cls, db: Database, ctx: TenantContext, extra_roles: Iterable[str] = ()
    ) -> Authorizer:
        """Load the run's tenant's policy, and nothing else, into a new enforcer.

        Args:
            extra_roles: Roles the platform vouches for in this run only (a Slack
                workspace admin is a tenant admin while acting from that workspace);
                they are never stored, so they end with the run.
        """
        return cls(ctx, await _read_policy(db, ctx.tenant_id), extra_roles)

    @property
    def loaded_rules(self) -> tuple[tuple[str, ...], ...]:
        """Every rule this run holds, as ``("p", ...)`` and ``("g", ...)`` tuples."""
        return self._policy.rules()

    def roles(self) -> list[str]:
        """The principal's roles in the run's tenant, most powerful first."""
        who = self._ctx.principal_id
        held = {role for principal, role in self._policy.grants() if principal == who}
        return sorted(held | set(self._extra), key=_role_order)

    def permits(self, capability: str) -> bool:
        """Whether the principal's roles allow ``capability`` (a name, not a pattern).

        Decisions are kept for the run: its policy was loaded once and does not change
        under it, and a policy evaluation costs far more than the lookup.
        """
        decision = self._decisions.get(capability)
        if decision is None:
            decision = self._decisions[capability] = self._decide(capability)
        return decision

    def _decide(self, capability: str) -> bool:
        if "*" in capability or not _is_principal(self._ctx.principal_id):
            return False
        if self._policy.allows(self._ctx.principal_id, capability):
            return True
        return any(self._policy.allows(ROLE_PREFIX + r, capability) for r in self._extra)

    def permitted_capabilities(self, candidates: Iterable[str]) -> frozenset[str]:
        """The candidates the principal's roles allow."""
        return frozenset(name for name in candidates if self.permits(name))

    def require(self, capability: str) -> None:
        """Refuse, naming who can fix it, unless the principal may use ``capability``.

        Raises:
            ToolRefused: reason ``forbidden``.
        """
        if self.permits(capability):
            return
        ctx = self._ctx
        held = ", ".join(self.roles()) or "none"
        able = [r for r in ROLES if self._policy.allows(ROLE_PREFIX + r, capability)]
        fix = (
            f"a tenant admin can grant a role that allows it ({', '.join(able)})"
            if able
            else "no role of this tenant allows it; a tenant admin would have to change "
            "the tenant's policy"
        )
        raise ToolRefused(
            capability,
            "forbidden",
            f"principal {ctx.principal_id!r} (roles: {held}) may not use {capability!r} "
            f"in tenant {ctx.tenant_id!r}; {fix}",
        )

    def require_resource(self, capability: str, resource_tenant_id: str, resource_id: str) -> None:
        """``require``, and refuse any resource that is not the run's tenant's.

        Raises:
            ToolRefused: reason ``forbidden``. The message does not name the owning
                tenant, which the principal has no business learning.
        """
        self.require(capability)
        if resource_tenant_id != self._ctx.tenant_id:
            raise ToolRefused(
                capability,
                "forbidden",
                f"principal {self._ctx.principal_id!r} may not reach resource "
                f"{resource_id!r} with {capability!r}: it does not belong to tenant "
                f"{self._ctx.tenant_id!r}, and no role can grant access to another "
                "tenant's resources",
            )
