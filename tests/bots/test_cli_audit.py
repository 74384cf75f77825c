from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bots.cli_audit import audit
from core.audit.events import RUN_STARTED, TOOL_INVOKED, canonical_bytes
from core.audit.keys import load_keys
from core.audit.log import AuditLog
from core.audit.store import encode_range
from core.context import AuditInfo, Initiator, new_run_id
from core.db.engine import Database
from core.merkle import CompactRange, leaf_hash, verify_consistency
from core.runs import create_run
from core.settings import Settings
from tests.core.test_context import context
from tests.support.databases import execute
from tests.support.tenancy import plan, tenant_on


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


def _unguard(conn: Connection) -> None:
    """Drop the append-only triggers, as an owner of the database could."""
    for table in ("audit_events", "audit_checkpoints"):
        if conn.dialect.name == "sqlite":
            for operation in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER {table}_no_{operation}"))
        else:
            conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))


async def _rewrite_with_leaf(settings: Settings, seq: int) -> None:
    """A rewrite by someone who also recomputes the leaf hash and the head: only a
    checkpoint kept outside the database can show it."""
    db = Database(settings.database_url)

    def rewrite(conn: Connection) -> None:
        _unguard(conn)
        conn.execute(text("DELETE FROM audit_checkpoints"))
        rows = conn.execute(text("SELECT seq, run_id, event, time, fields FROM audit_events "
                                 "WHERE tenant_id = 'acme' ORDER BY seq")).all()
        tree = CompactRange()
        for row in rows:
            fields = '{"capability":"crm.refund","n":0}' if row.seq == seq else row.fields
            leaf = leaf_hash(canonical_bytes("acme", row.seq, row.run_id, row.event,
                                             row.time, fields))
            conn.execute(text("UPDATE audit_events SET fields = :f, leaf_hash = :h "
                              "WHERE tenant_id = 'acme' AND seq = :s"),
                         {"f": fields, "h": leaf.hex(), "s": row.seq})
            tree.append(leaf)
        conn.execute(text("UPDATE audit_heads SET compact_range = :r WHERE tenant_id = 'acme'"),
                     {"r": encode_range(tree)})

    try:
        await db.run(rewrite)
    finally:
        await db.dispose()


async def _roll_back(settings: Settings, keep: int) -> None:
    """Delete the newest events and every checkpoint that would show them, and put the
    head back as it was at ``keep`` events."""
    def roll_back(conn: Connection) -> None:
        _unguard(conn)
        conn.execute(text("DELETE FROM audit_checkpoints"))
        conn.execute(text("DELETE FROM audit_events WHERE seq > :keep"), {"keep": keep})
        tree = CompactRange()
        for leaf in conn.scalars(text("SELECT leaf_hash FROM audit_events ORDER BY seq")):
            tree.append(bytes.fromhex(leaf))
        conn.execute(text("UPDATE audit_heads SET size = :n, compact_range = :r"),
                     {"n": keep, "r": encode_range(tree)})

    db = Database(settings.database_url)
    try:
        await db.run(roll_back)
    finally:
        await db.dispose()


def kept_checkpoint(settings: Settings, tmp_path: Path) -> Path:
    assert invoke(settings, "checkpoint", "--tenant", "acme").exit_code == 0
    listed = invoke(settings, "checkpoints", "--tenant", "acme")
    assert listed.exit_code == 0 and listed.output.startswith("6\t")
    printed = invoke(settings, "checkpoints", "--tenant", "acme", "--size", "6")
    assert printed.output.startswith("tenantry.local/tenants/acme\n6\n")
    path = tmp_path / "kept.checkpoint"
    path.write_text(printed.output, encoding="utf-8")
    return path


def test_verify_against_a_kept_checkpoint_holds_for_an_extended_log(
        filled: Settings, tmp_path: Path) -> None:
    kept = kept_checkpoint(filled, tmp_path)
    asyncio.run(_fill(filled, 3))

    result = invoke(filled, "verify", "--tenant", "acme", "--against", str(kept))

    assert result.exit_code == 0, result.output
    assert "ok: the log extends the checkpoint in" in result.output


def test_verify_against_finds_a_rewrite_that_the_log_alone_cannot(
        filled: Settings, tmp_path: Path) -> None:
    kept = kept_checkpoint(filled, tmp_path)
    asyncio.run(_rewrite_with_leaf(filled, 2))
    assert invoke(filled, "verify", "--tenant", "acme").exit_code == 0, "self-consistent"

    result = invoke(filled, "verify", "--tenant", "acme", "--against", str(kept))

    assert result.exit_code == 1
    assert "are not those of the checkpoint you kept" in result.output
    assert "it was rewritten" in result.output


def test_verify_against_finds_a_roll_back(filled: Settings, tmp_path: Path) -> None:
    kept = kept_checkpoint(filled, tmp_path)
    asyncio.run(_roll_back(filled, 4))

    result = invoke(filled, "verify", "--tenant", "acme", "--against", str(kept))

    assert result.exit_code == 1
    assert "holds 4 events, fewer than the 6 of the checkpoint you kept" in result.output


def test_consistency_prints_a_proof_any_rfc6962_verifier_accepts(filled: Settings) -> None:

    result = invoke(filled, "consistency", "--tenant", "acme", "--from", "3", "--to", "6")

    assert result.exit_code == 0, result.output
    proof = json.loads(result.stdout)
    assert (proof["size1"], proof["size2"]) == (3, 6)
    verify_consistency(3, 6, [bytes.fromhex(h) for h in proof["proof"]],
                       bytes.fromhex(proof["root1"]), bytes.fromhex(proof["root2"]))
    beyond = invoke(filled, "consistency", "--tenant", "acme", "--from", "3", "--to", "60")
    assert beyond.exit_code == 1 and "holds 6 events, not 60" in beyond.output


def test_verify_refuses_an_unknown_tenant_and_a_log_whose_events_are_gone(
        filled: Settings) -> None:
    unknown = invoke(filled, "verify", "--tenant", "nobody")
    assert unknown.exit_code == 1 and "no tenant 'nobody'" in unknown.output

    assert invoke(filled, "checkpoint", "--tenant", "acme").exit_code == 0
    asyncio.run(_roll_back_all_but_checkpoints(filled))
    emptied = invoke(filled, "verify", "--tenant", "acme")
    assert emptied.exit_code == 1
    assert "event 1 is missing: the checkpoint signed at size 6 includes it" in emptied.output


async def _roll_back_all_but_checkpoints(settings: Settings) -> None:
    def delete_events(conn: Connection) -> None:
        _unguard(conn)
        conn.execute(text("DELETE FROM audit_events"))
        conn.execute(text("DELETE FROM audit_heads"))

    db = Database(settings.database_url)
    try:
        await db.run(delete_events)
    finally:
        await db.dispose()


def test_keys_rotate_keeps_old_checkpoints_verifying(filled: Settings) -> None:
    assert invoke(filled, "checkpoint", "--tenant", "acme").exit_code == 0
    before = invoke(filled, "keys", "show", "--tenant", "acme").output.splitlines()

    rotated = invoke(filled, "keys", "rotate")
    asyncio.run(_fill(filled, 2))
    assert invoke(filled, "checkpoint", "--tenant", "acme").exit_code == 0

    assert rotated.exit_code == 0, rotated.output
    after = invoke(filled, "keys", "show", "--tenant", "acme").output.splitlines()
    assert after[0] not in before and set(before) < set(after), "old keys still verify"
    assert after[0].startswith("tenantry.local/tenants/acme+"), "named for the log's origin"
    verified = invoke(filled, "verify", "--tenant", "acme")
    assert verified.exit_code == 0 and "2 signed checkpoints hold" in verified.output


async def _sessions(settings: Settings) -> list[str]:
    """Runs of session ``checkout-7`` in acme (two transports) and globex, and one
    unrelated acme run; the acme session's run ids, oldest first."""
    db = Database(settings.database_url)
    made = []
    try:
        for tenant_id in ("acme", "globex"):
            await tenant_on(db, tenant_id, plan())
        sessions: tuple[tuple[str, str, Initiator, str], ...] = (
                ("acme", "svc:backend", "user", "session:checkout-7"),
                ("globex", "svc:backend", "user", "session:checkout-7"),
                ("acme", "slack:T1:U1", "user", "slack:T1:C1:1700000000.0001"),
                ("acme", "svc:nightly", "cron", "session:checkout-7"))
        for tenant_id, principal, initiator, correlation in sessions:
            ctx = context(tenant_id=tenant_id, principal_id=principal, audit=AuditInfo(
                run_id=new_run_id(), initiated_at=datetime.now(UTC), initiator=initiator,
                correlation_id=correlation))
            await db.run(create_run, ctx, prompt="hello", model="sandbox", status="queued")
            if tenant_id == "acme" and correlation.startswith("session:"):
                made.append(ctx.run_id)
    finally:
        await db.dispose()
    return made


def test_session_lists_that_tenants_runs_of_the_session_only(settings: Settings) -> None:
    made = asyncio.run(_sessions(settings))

    listed = invoke(settings, "session", "--tenant", "acme", "checkout-7", "--json")
    text_lines = invoke(settings, "session", "--tenant", "acme", "checkout-7")
    other = invoke(settings, "session", "--tenant", "globex", "checkout-7", "--json")
    none = invoke(settings, "session", "--tenant", "acme", "checkout-8")
    bad = invoke(settings, "session", "--tenant", "acme", "no spaces")

    assert listed.exit_code == 0, listed.output
    runs = json.loads(listed.stdout)
    assert [(r["run_id"], r["initiator"], r["principal_id"], r["status"]) for r in runs] == [
        (made[0], "user", "svc:backend", "queued"), (made[1], "cron", "svc:nightly", "queued")]
    assert all(datetime.fromisoformat(r["created_at"]).tzinfo is not None for r in runs)
    assert [line.split("\t")[:4] for line in text_lines.stdout.splitlines()] == [
        [made[0], "user", "svc:backend", "queued"], [made[1], "cron", "svc:nightly", "queued"]]
    assert other.exit_code == 0 and len(json.loads(other.stdout)) == 1
    assert json.loads(other.stdout)[0]["run_id"] not in made
    assert none.exit_code == 0 and none.stdout == ""
    assert "no runs of session checkout-8 in tenant acme" in none.stderr
    assert bad.exit_code == 2 and "a session id is 1-100 letters" in bad.output
