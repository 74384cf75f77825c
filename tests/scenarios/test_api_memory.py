"""``/v1/memory``: a tenant's documents, added, searched and deleted with its keys only."""

from __future__ import annotations

from core.audit import events
from tests.scenarios.api_client import call, issue_key
from tests.scenarios.harness import Scenario, audit_events

DOCUMENT = "ZEBRA-7781: refunds of rockets are accepted within 30 days of purchase."


async def test_a_document_is_added_searched_and_deleted_within_its_tenant(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    await scenario.tenant("globex")
    acme = await issue_key(scenario, "acme", "svc:docs")
    globex = await issue_key(scenario, "globex")
    search = {"query": "refunds of rockets", "top": 3}

    added = await call(scenario, "POST", "/v1/memory", acme,
                       json={"source": "refunds.md", "text": DOCUMENT})
    found = await call(scenario, "POST", "/v1/memory/search", acme, json=search)
    theirs = await call(scenario, "POST", "/v1/memory/search", globex, json=search)
    not_theirs = await call(scenario, "DELETE", "/v1/memory/refunds.md", globex)
    deleted = await call(scenario, "DELETE", "/v1/memory/refunds.md", acme)
    again = await call(scenario, "DELETE", "/v1/memory/refunds.md", acme)
    after = await call(scenario, "POST", "/v1/memory/search", acme, json=search)

    assert added.status == 201 and added.body == {"source": "refunds.md", "chunks": 1}
    assert found.status == 200
    assert [(m["source"], m["text"]) for m in found.body] == [("refunds.md", DOCUMENT)]
    assert (theirs.status, theirs.body) == (200, [])
    assert not_theirs.status == 404
    assert deleted.status == 200 and deleted.body == {"source": "refunds.md", "chunks": 1}
    assert again.status == 404 and after.body == []
    [ingested] = await audit_events(scenario, "acme", events.DOCUMENT_INGESTED)
    removed = await audit_events(scenario, "acme", events.MEMORY_DELETED)
    assert ingested.fields["principal"] == "svc:docs"
    assert [(e.fields["principal"], e.fields["chunks"]) for e in removed] == [
        ("svc:docs", 1), ("svc:docs", 0)], "every deletion is audited, an empty one too"
    [tried] = await audit_events(scenario, "globex", events.MEMORY_DELETED)
    assert tried.fields["chunks"] == 0, "globex's try is in globex's own log, and took nothing"


async def test_bad_memory_requests_are_problems_and_store_nothing(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    key = await issue_key(scenario, "acme")

    answers = [
        await call(scenario, "POST", "/v1/memory", key, json={"source": "a.md"}),
        await call(scenario, "POST", "/v1/memory", key, json={"source": "", "text": "x"}),
        await call(scenario, "POST", "/v1/memory", key, json={"source": "a/b", "text": "x"}),
        await call(scenario, "POST", "/v1/memory", key, data=b"{not json"),
        await call(scenario, "POST", "/v1/memory/search", key, json={"query": "x", "top": 99}),
        await call(scenario, "POST", "/v1/memory/search", key, json={"query": "   "}),
    ]
    unauthorised = await call(scenario, "POST", "/v1/memory/search", None, json={"query": "x"})

    assert [a.status for a in answers] == [422] * 6
    assert all(a.body["status"] == 422 and a.body["detail"] for a in answers)
    assert unauthorised.status == 401 and "WWW-Authenticate" in unauthorised.headers
    assert await audit_events(scenario, "acme", events.DOCUMENT_INGESTED) == []
