"""Random interleavings of three tenants' operations never cross tenants."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.runtime import open_runtime
from core.audit.events import RUN_STARTED
from core.budget.ledger import summary, used
from core.memory import append_turn, conversation_window
from core.runs import recent_runs
from core.settings import Settings
from core.tenants import billing_period, get_tenant
from tests.support.tenancy import plan

TENANTS = ("ta", "tb", "tc")
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")

operation = st.one_of(
    st.tuples(st.just("ingest"), st.sampled_from(TENANTS), st.sampled_from(WORDS)),
    st.tuples(st.just("search"), st.sampled_from(TENANTS), st.sampled_from(WORDS)),
    st.tuples(st.just("history"), st.sampled_from(TENANTS), st.sampled_from(WORDS)),
    st.tuples(st.just("run"), st.sampled_from(TENANTS), st.sampled_from(WORDS)),
    st.tuples(st.just("delete"), st.sampled_from(TENANTS), st.sampled_from(WORDS)),
)


async def scenario(root: Path, ops: list[tuple[str, str, str]]) -> None:
    url = f"sqlite:///{root / 'iso.db'}"
    config = Settings(database_url=url, model="sandbox", embedder="hashing",
                      data_dir=root / "data")
    async with open_runtime(config, migrate=True) as rt:
        from core.tenants import create_plan, create_tenant

        await rt.db.run(create_plan, plan(capabilities=frozenset({"knowledge.search"})))
        for tenant in TENANTS:
            await rt.db.run(create_tenant, tenant_id=tenant, name=tenant, plan_id="team")
        owned: dict[str, set[str]] = {t: set() for t in TENANTS}
        said: dict[str, list[str]] = {t: [] for t in TENANTS}
        runs: dict[str, int] = {t: 0 for t in TENANTS}
        for kind, tenant, word in ops:
            grant = await rt.agent.open(tenant_id=tenant, principal_id="p",
                                        extra_roles={"member"})
            ctx = grant.ctx
            source = f"{tenant}-{word}.txt"
            if kind == "ingest":
                await rt.knowledge.add(ctx, source, f"{tenant} secret about {word}.")
                owned[tenant].add(source)
            elif kind == "delete":
                await rt.knowledge.delete(ctx, source)
                owned[tenant].discard(source)
            elif kind == "search":
                found = {m.source for m in await rt.knowledge.search(ctx, word, 20)}
                assert found <= owned[tenant], "a search returned another tenant's chunk"
                assert found == owned[tenant] or len(found) == 20
            elif kind == "history":
                await rt.db.run(append_turn, ctx, "conv", "user", f"{tenant}:{word}")
                said[tenant].append(f"{tenant}:{word}")
                turns = await rt.db.run(conversation_window, ctx, "conv", 100)
                assert [t.text for t in turns] == said[tenant]
            else:
                outcome = await rt.agent.start(grant, f"what about {word}?", model="sandbox")
                assert outcome.status == "completed"
                runs[tenant] += 1
                for match in (outcome.answer or "").split(f"{tenant}-"):
                    assert not any(f"{other}-" in match for other in TENANTS if other != tenant)
        for tenant in TENANTS:
            own = (await rt.agent.open(tenant_id=tenant, principal_id="p")).ctx
            record = await rt.db.run(get_tenant, tenant)
            tokens, _cost, _calls = await rt.db.run(used, tenant,
                                                                    billing_period(record))
            summaries = [await rt.db.run(summary, own.tenant_id, r.id)
                         for r in await rt.db.run(recent_runs, tenant, 1000)]
            assert tokens == sum(s.tokens + s.retried_tokens for s in summaries)
            assert len(summaries) == runs[tenant]
            started = await rt.audit.recent(tenant, 1000, events={RUN_STARTED})
            assert len(started) == runs[tenant]
            assert (await rt.audit.verify(tenant)).ok


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=12))
def test_no_operation_crosses_tenants(tmp_path: Path, ops: list[tuple[str, str, str]]) -> None:
    root = tmp_path / uuid.uuid4().hex
    root.mkdir()
    asyncio.run(scenario(root, ops))
