from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.budget.ledger import used
from core.budget.meter import RunMeter, TokenUsage
from core.builder import build_context
from core.db.engine import Database
from core.db.schema import usage_ledger
from core.errors import BudgetExceeded
from core.prices import price_for
from core.tenants import billing_period, get_tenant
from tests.support.databases import fetch_value, pg_server_url
from tests.support.spend import spend
from tests.support.tenancy import plan, tenant_on

ROOT = Path(__file__).resolve().parents[2]
SONNET = price_for("anthropic:claude-sonnet-4-5")


async def meter(db: Database, **limits: int) -> RunMeter:
    await tenant_on(db, "acme", plan(**limits))  # type: ignore[arg-type]
    grant = await build_context(db, tenant_id="acme", principal_id="p")
    return RunMeter(grant.ctx)


async def test_max_tokens_is_lowered_to_what_the_run_can_still_afford(db: Database) -> None:
    m = await meter(db, run_tokens=1_000)
    assert m.before_model_call(200, 4096, SONNET) == 800
    m.after_model_call(TokenUsage(input_tokens=200, output_tokens=500), 0)
    assert m.before_model_call(200, 4096, SONNET) == 100
    with pytest.raises(BudgetExceeded) as exc:
        m.before_model_call(260, 4096, SONNET)
    assert (exc.value.ceiling, exc.value.limit, exc.value.used) == ("tokens", 1_000, 960)


async def test_the_cost_ceiling_limits_output_by_price(db: Database) -> None:
    ceiling = SONNET.input_bound(100) + SONNET.cost(input_tokens=0, output_tokens=100)
    m = await meter(db, run_cost_microcents=ceiling)
    assert m.before_model_call(100, 4096, SONNET) == 100
    m.after_model_call(TokenUsage(input_tokens=100, output_tokens=60),
                       SONNET.cost(input_tokens=100, output_tokens=60))
    with pytest.raises(BudgetExceeded) as exc:
        m.before_model_call(100, 4096, SONNET)
    assert exc.value.ceiling == "cost_microcents"


async def test_walltime_is_a_deadline(db: Database) -> None:
    now = [0.0]
    await tenant_on(db, "acme", plan(run_walltime_ms=500))
    grant = await build_context(db, tenant_id="acme", principal_id="p")
    m = RunMeter(grant.ctx, clock=lambda: now[0])
    assert m.remaining_s() == 0.5
    now[0] = 0.6
    assert m.remaining_s() == 0.0
    with pytest.raises(BudgetExceeded) as exc:
        m.before_tool_call(0)
    assert (exc.value.ceiling, exc.value.limit, exc.value.used) == ("walltime_ms", 500, 600)


async def test_prices_round_each_request_up_to_the_microcent() -> None:
    assert SONNET.input == 300_000_000
    assert SONNET.cost(input_tokens=1, output_tokens=0) == 300
    haiku = price_for("anthropic:claude-haiku-4-5")
    assert haiku.cost(input_tokens=0, output_tokens=0, cache_read_tokens=1) == 10
    assert haiku.cost(input_tokens=0, output_tokens=0, cache_write_tokens=3) == 375


async def _assert_exact_and_within(db: Database, tenant_id: str, allowance: int) -> int:
    tenant = await db.run(get_tenant, tenant_id)
    tokens, _cost, _calls = await db.run(used, tenant_id, billing_period(tenant))
    ledger = await fetch_value(db, select(
        func.sum(usage_ledger.c.input_tokens + usage_ledger.c.output_tokens
                 + usage_ledger.c.cache_read_tokens + usage_ledger.c.cache_write_tokens))
        .where(usage_ledger.c.tenant_id == tenant_id))
    reserved = await fetch_value(db, select(func.count()).select_from(usage_ledger)
                                 .where(usage_ledger.c.status == "reserved"))
    assert reserved == 0
    assert tokens == ledger, "the month must equal the sum of its ledger rows"
    assert 0 < tokens <= allowance
    return int(tokens)


MONTHLY = 3_000


async def test_fifty_concurrent_runs_never_overspend_the_month(db: Database) -> None:
    await tenant_on(db, "acme", plan(monthly_tokens=MONTHLY))
    statuses = await spend(db.url, "acme", 50)
    assert statuses.count("completed") >= 1
    assert {"halted", "refused"} & set(statuses), statuses
    await _assert_exact_and_within(db, "acme", MONTHLY)


@pytest.mark.postgres
async def test_four_processes_never_overspend_the_month_on_postgresql(db: Database) -> None:
    if db.is_sqlite or pg_server_url() is None:
        pytest.skip("cross-process spending is checked on PostgreSQL")
    await tenant_on(db, "acme", plan(monthly_tokens=MONTHLY))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.spend", db.url, "acme", "15",
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    results = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-2000:] for r in results]
    statuses = " ".join(r[0].decode().strip().splitlines()[-1] for r in results).split()
    assert len(statuses) == 60 and "completed" in statuses
    await _assert_exact_and_within(db, "acme", MONTHLY)
