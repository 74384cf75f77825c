"""``/v1/budget`` and ``/v1/audit/...``: the core's own figures, of the key's tenant only."""

from __future__ import annotations

from core.budget.ledger import standing
from tests.scenarios.api_client import call, issue_key
from tests.scenarios.harness import Scenario, runs_of
from tests.scenarios.test_api_runs import finished


async def test_the_budget_is_the_ledgers_month_and_the_keys_own_share(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    backend = await issue_key(scenario, "acme", "svc:backend")
    other = await issue_key(scenario, "acme", "svc:reports")
    globex = await issue_key(scenario, "globex", "svc:backend")
    mine = (await call(scenario, "POST", "/v1/runs", backend, json={"prompt": "hello"})).body["id"]
    theirs = (await call(scenario, "POST", "/v1/runs", other, json={"prompt": "hi"})).body["id"]
    run = await finished(scenario, backend, mine)
    await finished(scenario, other, theirs)

    seen = await call(scenario, "GET", "/v1/budget", backend)
    elsewhere = await call(scenario, "GET", "/v1/budget", globex)

    held = await scenario.db.run(standing, "acme")
    assert seen.status == 200
    body = seen.body
    assert (body["tenant_id"], body["plan_id"], body["period"]) == (
        "acme", held.plan.id, held.period)
    assert [body[name]["used"] for name in ("tokens", "cost_microcents", "tool_calls")] == list(
        held.used)
    assert body["tokens"]["allowance"] == held.plan.monthly_tokens
    assert held.used[0] > 0, "both runs were charged"
    share = body["principal"]
    assert (share["principal_id"], share["runs"], [r["id"] for r in share["recent"]]) == (
        "svc:backend", 1, [mine])
    usage = run["usage"]
    assert share["tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert share["cost_microcents"] == usage["cost_microcents"]
    assert share["tokens"] < body["tokens"]["used"], "the other principal's run is not mine"
    assert elsewhere.status == 200 and elsewhere.body["tenant_id"] == "globex"
    assert elsewhere.body["tokens"]["used"] == 0 and elsewhere.body["principal"] == {
        "principal_id": "svc:backend", "runs": 0, "tokens": 0, "cost_microcents": 0,
        "tool_calls": 0, "recent": []}
    assert await runs_of(scenario, "globex") == []


async def test_the_checkpoint_is_the_tenants_latest_signed_one(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    acme = await issue_key(scenario, "acme")
    globex = await issue_key(scenario, "globex")
    audit = scenario.runtime.audit

    before = await call(scenario, "GET", "/v1/audit/checkpoint", acme)
    await audit.sign_checkpoint("acme")
    signed = await call(scenario, "GET", "/v1/audit/checkpoint", acme)
    unsigned = await call(scenario, "GET", "/v1/audit/checkpoint", globex)

    latest = await audit.latest_checkpoint("acme")
    assert latest is not None
    assert before.status == 404 and before.body["status"] == 404
    assert signed.status == 200 and signed.body == {
        "size": latest.size, "root": latest.root, "note": latest.note,
        "created_at": latest.created_at}
    assert unsigned.status == 404, "acme's checkpoint is never globex's"


async def test_an_inclusion_proof_is_the_cores_and_only_of_the_keys_tenants_log(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    acme = await issue_key(scenario, "acme")
    globex = await issue_key(scenario, "globex")
    audit = scenario.runtime.audit
    await finished(scenario, acme, (await call(scenario, "POST", "/v1/runs", acme,
                                               json={"prompt": "hello"})).body["id"])
    await audit.sign_checkpoint("acme")
    acme_size = (await audit.recent("acme", 1))[0].seq
    globex_size = (await audit.recent("globex", 1))[0].seq
    assert acme_size > globex_size

    proved = await call(scenario, "GET", "/v1/audit/proof?seq=2", acme)
    theirs = await call(scenario, "GET", "/v1/audit/proof?seq=1", globex)
    beyond = await call(scenario, "GET", f"/v1/audit/proof?seq={acme_size}", globex)
    bad = [await call(scenario, "GET", f"/v1/audit/proof{query}", acme)
           for query in ("", "?seq=", "?seq=0", "?seq=-1", "?seq=two", "?seq=1e3",
                         "?seq=99999999999999999999", "?seq=999999999999999")]

    core = await audit.inclusion_proof("acme", 2)
    core.verify(*audit.verifiers_for("acme"))
    assert proved.status == 200 and proved.body == {
        "seq": 2, "event": core.event.event, "leaf_hash": core.leaf_hash, "index": 1,
        "tree_size": core.tree_size, "root": core.root, "proof": list(core.proof),
        "checkpoint": core.checkpoint}
    assert proved.body["checkpoint"], "against the signed checkpoint"
    own = (await call(scenario, "GET", "/v1/audit/proof?seq=1", acme)).body["leaf_hash"]
    assert theirs.status == 200 and theirs.body["leaf_hash"] != own
    assert theirs.body["leaf_hash"] == (await audit.inclusion_proof("globex", 1)).leaf_hash
    assert beyond.status == 404 and beyond.body["status"] == 404
    assert [answer.status for answer in bad] == [422] * 7 + [404]
    assert all(answer.body["title"] for answer in bad)
