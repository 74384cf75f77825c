from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, table, text

from core.authz import (
    Authorizer,
    capability_matches,
    grant,
    list_grants,
    purge_policy,
    revoke,
    roles_of,
    seed_policy,
)
from core.context import MonthlyRemaining, PrincipalKind, RunCeilings, TenantContext, derive_context
from core.db.engine import Database
from core.db.migrate import alembic_config, upgrade
from core.db.schema import tenants as tenant_table
from core.errors import InvalidInput, NotFound, ToolRefused
from tests.support.databases import execute, fetch_value
from tests.support.tenancy import plan, tenant_on

CANDIDATES = frozenset({
    "knowledge.search", "budget.status", "memory.recall", "counter.bump",
    "audit.recent", "audit.verify", "roles.grant",
})
EXPECTED = {
    "owner": CANDIDATES,
    "admin": CANDIDATES,
    "member": frozenset({"knowledge.search", "budget.status", "memory.recall", "counter.bump"}),
    "guest": frozenset({"knowledge.search", "budget.status"}),
}


def ctx_for(tenant_id: str, principal_id: str, kind: PrincipalKind = "user") -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id=principal_id, principal_kind=kind,
        scope=CANDIDATES, ceilings=RunCeilings(1, 1, 1, 1),
        remaining=MonthlyRemaining(1, 1, 1), initiator="user",
    )


async def tenants(db: Database, *ids: str) -> None:
    for tenant_id in ids:
        await tenant_on(db, tenant_id, plan())
        await db.run(seed_policy, tenant_id)


async def permitted(db: Database, tenant_id: str, principal_id: str) -> frozenset[str]:
    authorizer = await Authorizer.for_run(db, ctx_for(tenant_id, principal_id))
    return authorizer.permitted_capabilities(CANDIDATES)


async def test_default_roles_allow_what_the_table_says(db: Database) -> None:
    await tenants(db, "acme")
    for role in EXPECTED:
        assert await db.run(grant, "acme", f"u-{role}", role)
    for role, expected in EXPECTED.items():
        assert await permitted(db, "acme", f"u-{role}") == expected, role
    assert await permitted(db, "acme", "u-nobody") == frozenset()


async def test_a_member_is_refused_the_audit_log(db: Database) -> None:
    await tenants(db, "acme")
    await db.run(grant, "acme", "slack:T1:U1", "member")
    authorizer = await Authorizer.for_run(db, ctx_for("acme", "slack:T1:U1"))
    authorizer.require("knowledge.search")
    with pytest.raises(ToolRefused) as refused:
        authorizer.require("audit.recent")
    assert (refused.value.capability, refused.value.reason) == ("audit.recent", "forbidden")
    message = str(refused.value)
    for part in ("slack:T1:U1", "audit.recent", "member", "acme", "tenant admin", "owner, admin"):
        assert part in message


async def test_roles_only_add_rights(db: Database) -> None:
    await tenants(db, "acme")
    await db.run(grant, "acme", "u1", "member")
    await db.run(grant, "acme", "u1", "admin")
    assert await db.run(roles_of, "acme", "u1") == ["admin", "member"]
    assert await permitted(db, "acme", "u1") == CANDIDATES


async def test_grants_in_one_tenant_do_not_reach_another(db: Database) -> None:
    await tenants(db, "alpha", "beta")
    await db.run(grant, "alpha", "u1", "admin")
    await db.run(grant, "beta", "u1", "guest")
    assert await db.run(roles_of, "alpha", "u1") == ["admin"]
    assert await db.run(roles_of, "beta", "u1") == ["guest"]
    assert await permitted(db, "alpha", "u1") == EXPECTED["admin"]
    assert await permitted(db, "beta", "u1") == EXPECTED["guest"]
    await db.run(grant, "alpha", "u2", "owner")
    assert await permitted(db, "beta", "u2") == frozenset()


async def test_a_run_loads_only_its_own_tenants_rules_and_its_principals_grants(
    db: Database,
) -> None:
    await tenants(db, "alpha", "beta")
    await db.run(grant, "alpha", "u1", "member")
    await db.run(grant, "alpha", "u3", "owner")
    await db.run(grant, "beta", "u1", "owner")
    await db.run(grant, "beta", "u2", "admin")
    rules = (await Authorizer.for_run(db, ctx_for("alpha", "u1"))).loaded_rules
    p_rules = [rule for rule in rules if rule[0] == "p"]
    g_rules = [rule for rule in rules if rule[0] == "g"]
    assert len(p_rules) == 9 and {rule[2] for rule in p_rules} == {"alpha"}
    assert g_rules == [("g", "u1", "role:member", "alpha")]
    assert not any("beta" in rule for rule in rules)


async def test_another_tenants_resource_is_refused(db: Database) -> None:
    await tenants(db, "alpha", "beta")
    await db.run(grant, "alpha", "u1", "owner")
    authorizer = await Authorizer.for_run(db, ctx_for("alpha", "u1"))
    authorizer.require_resource("knowledge.search", "alpha", "doc-1")
    for tenant_id in ("beta", "", "ALPHA"):
        with pytest.raises(ToolRefused) as refused:
            authorizer.require_resource("knowledge.search", tenant_id, "doc-2")
        assert refused.value.reason == "forbidden"
        assert "doc-2" in str(refused.value) and "another tenant" in str(refused.value)


async def test_a_resource_needs_the_capability_too(db: Database) -> None:
    await tenants(db, "alpha")
    await db.run(grant, "alpha", "u1", "guest")
    authorizer = await Authorizer.for_run(db, ctx_for("alpha", "u1"))
    with pytest.raises(ToolRefused, match=r"may not use 'memory\.recall'"):
        authorizer.require_resource("memory.recall", "alpha", "m-1")


async def test_revoke_takes_effect_for_the_next_run(db: Database) -> None:
    await tenants(db, "acme")
    await db.run(grant, "acme", "u1", "admin")
    running = await Authorizer.for_run(db, ctx_for("acme", "u1"))
    assert await db.run(revoke, "acme", "u1", "admin")
    assert not await db.run(revoke, "acme", "u1", "admin")
    running.require("audit.recent")  # the run in flight keeps the policy it loaded
    nxt = await Authorizer.for_run(db, ctx_for("acme", "u1"))
    with pytest.raises(ToolRefused):
        nxt.require("audit.recent")
    assert await db.run(roles_of, "acme", "u1") == []


async def test_unknown_roles_and_bad_ids_are_refused_without_a_write(db: Database) -> None:
    await tenants(db, "acme")
    with pytest.raises(InvalidInput, match="unknown role 'superuser'"):
        await db.run(grant, "acme", "u1", "superuser")
    with pytest.raises(InvalidInput):
        await db.run(revoke, "acme", "u1", "root")
    for principal in ("role:admin", "a,b", "x)", "", "two words"):
        with pytest.raises(InvalidInput):
            await db.run(grant, "acme", principal, "member")
    with pytest.raises(NotFound):
        await db.run(grant, "ghost", "u1", "member")
    with pytest.raises(NotFound):
        await db.run(list_grants, "ghost")
    assert await db.run(list_grants, "acme") == []


async def test_an_agent_has_exactly_its_principals_rights(db: Database) -> None:
    await tenants(db, "acme")
    await db.run(grant, "acme", "u1", "guest")
    agent = await Authorizer.for_run(db, ctx_for("acme", "u1", kind="agent"))
    assert agent.permitted_capabilities(CANDIDATES) == EXPECTED["guest"]
    stranger = await Authorizer.for_run(db, ctx_for("acme", "agent:helper", kind="agent"))
    assert stranger.permitted_capabilities(CANDIDATES) == frozenset()


async def test_a_principal_cannot_pose_as_a_role(db: Database) -> None:
    await tenants(db, "acme")
    posing = await Authorizer.for_run(db, ctx_for("acme", "role:owner"))
    assert posing.permitted_capabilities(CANDIDATES) == frozenset()
    with pytest.raises(ToolRefused):
        posing.require("knowledge.search")


async def test_grants_list_by_principal_and_seeding_is_idempotent(db: Database) -> None:
    await tenants(db, "acme")
    assert await db.run(seed_policy, "acme") == 0
    await db.run(grant, "acme", "b", "guest")
    await db.run(grant, "acme", "a", "member")
    await db.run(grant, "acme", "a", "owner")
    assert not await db.run(grant, "acme", "a", "owner")
    assert await db.run(list_grants, "acme") == [("a", "owner"), ("a", "member"), ("b", "guest")]


async def test_purge_removes_one_tenants_rules(db: Database) -> None:
    await tenants(db, "alpha", "beta")
    await db.run(grant, "alpha", "u1", "member")
    await db.run(grant, "beta", "u1", "member")
    await db.run(purge_policy, "alpha")
    assert await db.run(list_grants, "alpha") == []
    assert await permitted(db, "alpha", "u1") == frozenset()
    assert await permitted(db, "beta", "u1") == EXPECTED["member"]
    count = await fetch_value(
        db, select(func.count()).select_from(table("casbin_rule")).where(text("v1 = 'alpha'")))
    assert count == 0


def test_wildcards_follow_keymatch_but_skip_administrative_namespaces() -> None:
    assert capability_matches("knowledge.search", "knowledge.*")
    assert not capability_matches("knowledgebase.search", "knowledge.*")
    assert capability_matches("knowledge.search", "*")
    assert not capability_matches("audit.recent", "*")
    assert capability_matches("audit.recent", "audit.*")
    assert not capability_matches("roles.grant", "*")
    assert capability_matches("budget.status", "budget.status")


async def test_the_migration_seeds_tenants_that_existed_before_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        authz_script = ScriptDirectory.from_config(alembic_config()).get_revision("0004")
        assert authz_script is not None and isinstance(authz_script.down_revision, str)
        await upgrade(db, authz_script.down_revision)
        now = datetime.now(UTC)
        # Written as a plan and a tenant of that schema revision were: no policy table yet.
        await execute(db, text(
            "INSERT INTO plans (id, monthly_tokens, monthly_cost_microcents, monthly_tool_calls,"
            " run_tokens, run_tool_calls, run_walltime_ms, run_cost_microcents, capabilities,"
            " created_at, updated_at) VALUES ('team', 1, 1, 1, 1, 1, 1, 1, '[]', :now, :now)"
        ).bindparams(now=now))
        await execute(db, tenant_table.insert().values(
            id="early", name="Early", plan_id="team", status="active", time_zone="UTC",
            features={}, created_at=now, updated_at=now))
        await upgrade(db)
        await db.run(grant, "early", "u1", "guest")
        assert await permitted(db, "early", "u1") == EXPECTED["guest"]
        assert await db.run(seed_policy, "early") == 0
    finally:
        await db.dispose()
