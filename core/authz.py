"""Authorisation: which capabilities a principal may use, per tenant, decided per run.

pycasbin RBAC with domains, the domain being the tenant. Every rule is a row of the
``casbin_rule`` table, written here inside the caller's transaction (so creating a
tenant and seeding its policy is one transaction). A run loads only its own tenant's
rules, and of the grants only its principal's, into a fresh enforcer
(``Authorizer.for_run``) that dies with the run: no decision outlives it, a revoke
takes effect at the next run, and the load costs the same in a tenant of 5 grants as of
5,000. The rules, in
casbin's columns::

    ptype  v0                v1           v2                   v3
    p      role:<role>       <tenant>     <capability pattern> use
    g      <principal>       role:<role>  <tenant>

Roles carry the ``role:`` prefix and principal ids may not, because casbin lets any
subject stand for itself: a principal whose id were ``admin`` would *be* the role.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import casbin
from casbin.persist import load_policy_line
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Connection

from core.context import TenantContext, check_id
from core.db.engine import Database, reads
from core.db.schema import casbin_rule, tenants
from core.errors import InvalidInput, NotFound, ToolRefused

# The default policy, copied into every tenant by ``seed_policy``. Patterns follow
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

# casbin re-parses stored rules from "p, a, b" text: these characters would split or
# unbalance a rule, so they never enter a principal id (nor does whitespace).
_PRINCIPAL = re.compile(r"^[^\s,()\[\]]{1,200}$")
_RULE_COLUMNS = ("ptype", "v0", "v1", "v2", "v3")


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


def check_principal(principal_id: str) -> None:
    """Raises ``InvalidInput`` unless ``principal_id`` is a well-formed principal id."""
    if not _is_principal(principal_id):
        raise InvalidInput(
            f"principal id must be 1-200 characters without whitespace, ',', brackets or "
            f"a leading {ROLE_PREFIX!r}; got {principal_id!r}"
        )


def _role_order(role: str) -> tuple[int, str]:
    return (ROLES.index(role) if role in ROLES else len(ROLES), role)


class Policy:
    """One tenant's rules in an enforcer of their own, for reading.

    The rules go into casbin's model exactly as its adapters would load them (the
    same rule lines, in the same order); the enforcer has no adapter, so it cannot
    write.
    """

    def __init__(self, rows: Iterable[Any], tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=_MODEL))
        self._enforcer.add_function("capabilityMatch", capability_matches)
        model = self._enforcer.get_model()
        for row in rows:
            values = list(itertools.takewhile(lambda value: value is not None, row))
            load_policy_line(", ".join(values), model)
        self._enforcer.build_role_links()

    def allows(self, subject: str, capability: str) -> bool:
        """Whether ``subject`` (a principal or ``role:<role>``) may use ``capability``."""
        return bool(self._enforcer.enforce(subject, self.tenant_id, capability, ACTION))

    def grants(self) -> list[tuple[str, str]]:
        """``(principal, role)`` pairs, without duplicates, by principal then role."""
        rows = self._enforcer.get_filtered_named_grouping_policy("g", 2, self.tenant_id)
        pairs = {(str(row[0]), str(row[1]).removeprefix(ROLE_PREFIX)) for row in rows}
        return sorted(pairs, key=lambda pair: (pair[0], _role_order(pair[1])))

    def rules(self) -> tuple[tuple[str, ...], ...]:
        """Every rule, as ``("p", ...)`` and ``("g", ...)`` tuples."""
        p_rules = [("p", *map(str, row)) for row in self._enforcer.get_policy()]
        g_rules = [("g", *map(str, row)) for row in self._enforcer.get_grouping_policy()]
        return tuple(p_rules + g_rules)


def _tenant_rules(conn: Connection, tenant_id: str, principal_id: str | None = None
                  ) -> list[Any]:
    c = casbin_rule.c
    grants = and_(c.ptype == "g", c.v2 == tenant_id)
    if principal_id is not None:
        grants = and_(grants, c.v0 == principal_id)
    return list(conn.execute(
        select(c.ptype, c.v0, c.v1, c.v2, c.v3, c.v4, c.v5)
        .where(or_(and_(c.ptype == "p", c.v1 == tenant_id), grants))
        .order_by(c.id)
    ).all())


@reads
def load_policy(conn: Connection, tenant_id: str, principal_id: str | None = None) -> Policy:
    """One tenant's rules, and only those, in one query; given a principal, of the
    grants only that principal's (all a run decides with: casbin's role manager costs
    in proportion to the square of the grants it holds)."""
    return Policy(_tenant_rules(conn, tenant_id, principal_id), tenant_id)


def _require_tenant(conn: Connection, tenant_id: str, *, lock: bool) -> None:
    """Refuse an unknown tenant; with ``lock``, serialise this tenant's policy writes.

    The row lock keeps two concurrent grants from both inserting the same rule on
    PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers.
    """
    check_id("tenant", tenant_id)
    query = select(tenants.c.id).where(tenants.c.id == tenant_id)
    if conn.scalar(query.with_for_update() if lock else query) is None:
        raise NotFound(f"no tenant {tenant_id!r}")


def _add(conn: Connection, tenant_id: str, rules: Iterable[tuple[str, ...]]) -> int:
    """Insert the rules the tenant does not have yet; how many were new."""
    have = {tuple(v for v in row if v is not None) for row in _tenant_rules(conn, tenant_id)}
    new = [rule for rule in dict.fromkeys(rules) if rule not in have]
    for rule in new:
        conn.execute(casbin_rule.insert().values(dict(zip(_RULE_COLUMNS, rule, strict=False))))
    return len(new)


def seed_policy(conn: Connection, tenant_id: str) -> int:
    """Give a tenant the default roles' permissions; how many rules were new."""
    _require_tenant(conn, tenant_id, lock=True)
    return _add(conn, tenant_id, [
        ("p", ROLE_PREFIX + role, tenant_id, pattern, ACTION)
        for role, patterns in DEFAULT_PERMISSIONS.items()
        for pattern in patterns
    ])


def grant(conn: Connection, tenant_id: str, principal_id: str, role: str) -> bool:
    """Give a principal a role in one tenant. Returns whether it was new.

    Raises:
        InvalidInput: unknown role, or a malformed tenant or principal id.
        NotFound: no such tenant.
    """
    subject = _check_role(role)
    check_principal(principal_id)
    _require_tenant(conn, tenant_id, lock=True)
    return _add(conn, tenant_id, [("g", principal_id, subject, tenant_id)]) == 1


def revoke(conn: Connection, tenant_id: str, principal_id: str, role: str) -> bool:
    """Take a role away in one tenant. Returns whether the principal had it.

    Runs already under way keep the policy they loaded; the next run will not.
    """
    subject = _check_role(role)
    _require_tenant(conn, tenant_id, lock=True)
    c = casbin_rule.c
    removed = conn.execute(delete(casbin_rule).where(
        c.ptype == "g", c.v0 == principal_id, c.v1 == subject, c.v2 == tenant_id))
    return removed.rowcount > 0


@reads
def roles_of(conn: Connection, tenant_id: str, principal_id: str) -> list[str]:
    """The roles a principal holds in one tenant, most powerful first."""
    check_id("tenant", tenant_id)
    grants = load_policy(conn, tenant_id, principal_id).grants()
    return [role for principal, role in grants if principal == principal_id]


@reads
def list_grants(conn: Connection, tenant_id: str) -> list[tuple[str, str]]:
    """Every ``(principal, role)`` of one tenant, by principal.

    Raises:
        NotFound: no such tenant (rather than an empty list that hides a typo).
    """
    _require_tenant(conn, tenant_id, lock=False)
    return load_policy(conn, tenant_id).grants()


def purge_policy(conn: Connection, tenant_id: str) -> None:
    """Delete every rule of one tenant (part of a purge)."""
    check_id("tenant", tenant_id)
    c = casbin_rule.c
    conn.execute(delete(casbin_rule).where(or_(and_(c.ptype == "p", c.v1 == tenant_id),
                                               and_(c.ptype == "g", c.v2 == tenant_id))))


class Authorizer:
    """The decisions of one run: its principal's rights in its tenant, loaded once.

    The agent acting for a principal is that principal here; there is no agent
    identity with rights of its own. Build it with ``for_run``.
    """

    def __init__(
        self, ctx: TenantContext, policy: Policy, extra_roles: Iterable[str] = ()
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
        policy = await db.run(load_policy, ctx.tenant_id, ctx.principal_id)
        return cls(ctx, policy, extra_roles)

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
