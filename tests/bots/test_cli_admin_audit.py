"""Every administrative command leaves an event naming who acted in the tenant's log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from bots.cli import cli
from core.audit.tables import audit_events
from core.db.engine import Database
from tests.support.databases import fetch_all

SECRET = "crm-secret-value-9f8e7d"


def run(runner: CliRunner, *args: str, stdin: str | None = None) -> str:
    result = runner.invoke(cli, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def logged(path: Path, tenant_id: str) -> list[tuple[str, dict[str, object]]]:
    async def read() -> list[tuple[str, dict[str, object]]]:
        db = Database(f"sqlite:///{path}")
        try:
            rows = await fetch_all(db, select(audit_events.c.event, audit_events.c.fields)
                                   .where(audit_events.c.tenant_id == tenant_id)
                                   .order_by(audit_events.c.seq))
        finally:
            await db.dispose()
        return [(row.event, json.loads(row.fields)) for row in rows]

    return asyncio.run(read())


def test_administrative_commands_are_audited_with_the_operator(
        tenantry: CliRunner, tmp_path: Path) -> None:
    run(tenantry, "plans", "create", "team", "--monthly-tokens", "1000",
        "--monthly-cost-microcents", "1000", "--monthly-tool-calls", "10", "--run-tokens",
        "100", "--run-tool-calls", "1", "--run-walltime-ms", "1000",
        "--run-cost-microcents", "100")
    run(tenantry, "tenants", "create", "acme", "--name", "Acme", "--plan", "team")
    run(tenantry, "roles", "grant", "--tenant", "acme", "slack:T1:U1", "admin")
    run(tenantry, "roles", "revoke", "--tenant", "acme", "slack:T1:U1", "admin")
    run(tenantry, "plans", "set", "team", "--run-tokens", "200", "--retention-days", "30")
    run(tenantry, "tenants", "suspend", "acme")
    run(tenantry, "tenants", "resume", "acme")
    run(tenantry, "credentials", "set", "--tenant", "acme", "crm_token", stdin=SECRET)
    run(tenantry, "credentials", "delete", "--tenant", "acme", "crm_token")

    events = logged(tmp_path / "t.db", "acme")

    assert [name for name, _ in events] == [
        "tenant.created", "role.granted", "role.revoked", "plan.changed", "tenant.suspended",
        "tenant.resumed", "credential.set", "credential.removed"]
    assert all(str(fields["by"]).startswith("cli") for _, fields in events)
    assert events[1][1]["principal"] == "slack:T1:U1" and events[1][1]["role"] == "admin"
    assert events[3][1]["limits"] == {"run_tokens": 200}
    assert events[3][1]["retention_days"] == 30
    assert events[6][1]["credential"] == "crm_token"
    assert SECRET not in json.dumps(events)


def test_a_grant_that_changes_nothing_records_nothing(
        tenantry: CliRunner, tmp_path: Path) -> None:
    run(tenantry, "plans", "create", "team", "--monthly-tokens", "1", "--monthly-cost-microcents",
        "1", "--monthly-tool-calls", "1", "--run-tokens", "1", "--run-tool-calls", "1",
        "--run-walltime-ms", "1", "--run-cost-microcents", "1")
    run(tenantry, "tenants", "create", "acme", "--name", "Acme", "--plan", "team")
    run(tenantry, "roles", "grant", "--tenant", "acme", "ops", "member")
    run(tenantry, "roles", "grant", "--tenant", "acme", "ops", "member")
    run(tenantry, "roles", "revoke", "--tenant", "acme", "nobody", "member")

    assert [name for name, _ in logged(tmp_path / "t.db", "acme")] == [
        "tenant.created", "role.granted"]
