from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from bots.cli_audit import audit
from core.audit import RUN_STARTED, TOOL_INVOKED, AuditLog, load_keys
from core.db.engine import Database
from core.settings import Settings
from tests.support.databases import execute


def invoke(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(audit, list(args), obj=settings)


async def _fill(settings: Settings, count: int) -> None:
    db = Database(settings.database_url)
    try:
        signer, retired = load_keys(settings)
        log = AuditLog(db, signer, verifiers=retired, origin_prefix=settings.audit_origin)
        await log.record("acme", RUN_STARTED, {"model": "sandbox"}, run_id="run-1")
        for n in range(count - 1):
            await log.record("acme", TOOL_INVOKED, {"capability": "crm.lookup", "n": n},
                             run_id="run-1")
    finally:
        await db.dispose()


async def _tamper(settings: Settings, seq: int) -> None:
    db = Database(settings.database_url)
    unguard = ("DROP TRIGGER audit_events_no_update" if db.is_sqlite
               else "DROP TRIGGER audit_events_append_only ON audit_events")
    try:
        await execute(db, text(unguard), text(
            "UPDATE audit_events SET event = 'run.completed' WHERE seq = :seq"
        ).bindparams(seq=seq))
    finally:
        await db.dispose()


@pytest.fixture
def filled(settings: Settings) -> Settings:
    asyncio.run(_fill(settings, 6))
    return settings


def test_verify_checkpoint_proof_and_recent_on_a_sound_log(filled: Settings) -> None:
    signed = invoke(filled, "checkpoint", "--tenant", "acme")
    assert signed.exit_code == 0, signed.output
    assert signed.output.startswith("tenantry.local/tenants/acme\n6\n")
    assert "\n\u2014 tenantry.local/tenants/acme " in signed.output

    verified = invoke(filled, "verify", "--tenant", "acme")
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith("ok: tenant acme: 6 events, root ")
    assert "1 signed checkpoints hold" in verified.output

    proof = invoke(filled, "proof", "--tenant", "acme", "--seq", "4")
    assert proof.exit_code == 0, proof.output
    body = json.loads(proof.stdout)  # stdout is the JSON and nothing else
    assert body["tree_size"] == 6 and len(body["proof"]) == 3
    assert proof.stderr.strip() == (
        "verified: event 4 is in the tree of 6 events (the signed checkpoint)")

    recent = invoke(filled, "recent", "--tenant", "acme", "--limit", "2")
    assert recent.exit_code == 0
    lines = recent.output.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["6", "5"]
    assert lines[0].split("\t")[2:] == ["tool.invoked", "run-1",
                                         '{"capability": "crm.lookup", "n": 4}']
    only = invoke(filled, "recent", "--tenant", "acme", "--event", RUN_STARTED)
    assert [line.split("\t")[0] for line in only.output.splitlines()] == ["1"]


def test_verify_fails_with_status_1_naming_the_first_bad_seq(filled: Settings) -> None:
    asyncio.run(_tamper(filled, 3))
    result = invoke(filled, "verify", "--tenant", "acme")
    assert result.exit_code == 1
    assert "FAILED: tenant acme: first bad seq 3: event 3 was changed" in result.output


def test_export_then_verify_the_bundle_offline(filled: Settings, tmp_path: Path) -> None:
    invoke(filled, "checkpoint", "--tenant", "acme")
    out = tmp_path / "acme-audit.json"
    exported = invoke(filled, "export", "--tenant", "acme", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    signer, _retired = load_keys(filled)
    published = AuditLog(Database(filled.database_url), signer,
                         origin_prefix=filled.audit_origin).verifier_keys("acme")[0]
    assert published in exported.output

    offline = Settings(database_url="sqlite:////nonexistent/nowhere.db")
    ok = invoke(offline, "verify", "--bundle", str(out), "--key", published)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"ok: {out}: 6 events")

    data = json.loads(out.read_text())
    data["events"][1]["fields"]["n"] = 99
    out.write_text(json.dumps(data))
    bad = invoke(offline, "verify", "--bundle", str(out))
    assert bad.exit_code == 1
    assert "first bad seq 2" in bad.output

    garbage = tmp_path / "garbage.json"
    garbage.write_text("[]")
    assert invoke(offline, "verify", "--bundle", str(garbage)).exit_code == 1
    wrong_key = invoke(offline, "verify", "--bundle", str(out), "--key", "nope")
    assert wrong_key.exit_code == 1 and "invalid verifier key" in wrong_key.output


def test_proof_of_a_missing_event_and_bad_option_combinations(filled: Settings) -> None:
    missing = invoke(filled, "proof", "--tenant", "acme", "--seq", "7")
    assert missing.exit_code == 1 and "has no audit event 7" in missing.output
    unsigned = invoke(filled, "proof", "--tenant", "acme", "--seq", "2")
    assert unsigned.exit_code == 0 and "(the current (unsigned) head)" in unsigned.output
    for args in ((), ("--tenant", "acme", "--bundle", __file__)):
        result = invoke(filled, "verify", *args)
        assert result.exit_code == 2 and "exactly one of --tenant and --bundle" in result.output


def test_outside_the_tenantry_root_the_commands_refuse() -> None:
    result = CliRunner().invoke(audit, ["verify", "--tenant", "acme"])
    assert result.exit_code == 2
    assert "runs under `tenantry`" in result.output
