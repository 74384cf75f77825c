"""Every bad credential the HTTP API can be shown, and what it answers: nothing runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.admin import Admin
from core.audit import events
from tests.scenarios.api_client import call, issue_key
from tests.scenarios.harness import Scenario, audit_events, runs_of

PROMPT = {"prompt": "hello"}


async def _key(scenario: Scenario, case: str) -> str | None:
    await scenario.tenant("acme")
    admin = Admin(scenario.db, scenario.runtime.audit, scenario.runtime.keyring, by="cli:ops")
    good = await issue_key(scenario, "acme")
    if case == "missing":
        return None
    if case == "malformed":
        return "not-a-key"
    if case == "unknown":
        return good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    if case == "revoked":
        await admin.revoke_api_key("acme", good[:16])
        return good
    if case == "expired":
        short = await issue_key(scenario, "acme", expires_in=timedelta(milliseconds=20))
        await asyncio.sleep(0.05)
        return short
    assert case == "tenant_suspended"
    await admin.set_status("acme", "suspended")
    return good


@pytest.mark.parametrize(("case", "status", "error"), [
    ("missing", 401, None),
    ("malformed", 401, "invalid_token"),
    ("unknown", 401, "invalid_token"),
    ("revoked", 401, "invalid_token"),
    ("expired", 401, "invalid_token"),
    ("tenant_suspended", 403, None),
])
async def test_a_bad_credential_is_refused_with_a_problem_and_nothing_runs(
        scenario: Scenario, case: str, status: int, error: str | None) -> None:
    key = await _key(scenario, case)

    answer = await call(scenario, "POST", "/v1/runs", key, json=PROMPT)

    assert answer.status == status
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.body["status"] == status and answer.body["title"] and answer.body["detail"]
    challenge = answer.headers.get("WWW-Authenticate")
    if status == 401:
        assert challenge is not None and challenge.startswith('Bearer realm="tenantry"')
        assert (f'error="{error}"' in challenge) if error else "error=" not in challenge
    else:
        assert challenge is None
    assert await runs_of(scenario, "acme") == []


@pytest.mark.parametrize("case", ["revoked", "expired", "tenant_suspended"])
async def test_a_stored_key_refused_is_audited_by_its_prefix_never_the_key(
        scenario: Scenario, case: str) -> None:
    key = await _key(scenario, case)
    assert key is not None

    await call(scenario, "GET", "/v1/runs/whatever", key)

    [refused] = await audit_events(scenario, "acme", events.API_KEY_REFUSED)
    assert refused.fields["reason"] == case
    assert refused.fields["key"] == key[:16]
    assert key not in str(refused.fields)


async def test_the_same_key_over_its_rate_is_told_when_to_come_back(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    key = await issue_key(scenario, "acme")

    answers = await asyncio.gather(*(call(scenario, "GET", "/v1/runs/none", key)
                                     for _ in range(80)))

    assert {a.status for a in answers} == {404, 429}
    limited = [a for a in answers if a.status == 429]
    assert len(limited) >= 20
    assert all(int(a.headers["Retry-After"]) >= 1 and a.body["status"] == 429 for a in limited)
    other = await issue_key(scenario, "acme", "svc:other")
    assert (await call(scenario, "GET", "/v1/runs/none", other)).status == 404
