from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from core.audit import append as audit_append
from core.audit.bundle import verify_bundle
from core.audit.events import (
    MEMORY_DELETED,
    RUN_COMPLETED,
    RUN_STARTED,
    TENANT_PURGED,
    TOOL_INVOKED,
    AuditError,
    canonical_bytes,
    canonical_json,
)
from core.audit.keys import KEY_FILE, load_keys, rotate_keys
from core.audit.log import AuditLog, arguments_fields, digest_with, salt, shred
from core.audit.store import event_batches
from core.audit.tables import audit_checkpoints, audit_events, audit_heads, audit_salts
from core.db.engine import Database
from core.errors import ConfigurationError, NotFound
from core.merkle import CompactRange, ProofError, leaf_hash, root_from_leaf_hashes
from core.settings import Settings
from core.signed_note import (
    Signer,
    generate_key,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
    verify_note,
)
from tests.support.databases import execute
from tests.support.tenancy import plan, tenant_on

SIGNER = parse_signer_key(generate_key("tenantry-audit")[0])
SECRET = "sk-live-acme-7c1d0e9b44"
PROMPT = "Summarise the Q3 churn numbers for our largest account, Initech, please"


def log_of(db: Database, signer: Signer = SIGNER, **kwargs: Any) -> AuditLog:
    return AuditLog(db, signer, **kwargs)


async def fill(log: AuditLog, tenant_id: str, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        await log.record(tenant_id, TOOL_INVOKED, {"capability": "crm.lookup", "n": index},
                         run_id=f"run-{index // 3}")


async def drop_guards(db: Database) -> None:
    """What an attacker with owner rights on the database does first."""
    if db.is_sqlite:
        await sql(db, "DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete")
    else:
        await sql(db, "DROP TRIGGER audit_events_append_only ON audit_events")


async def sql(db: Database, *statements: str) -> None:
    def execute(conn: Connection) -> None:
        for statement in statements:
            conn.execute(text(statement))

    await db.run(execute)


async def stored_rows(db: Database, tenant_id: str) -> list[Any]:
    query = select(audit_events).where(audit_events.c.tenant_id == tenant_id)
    return await db.run(lambda conn: list(conn.execute(query.order_by(audit_events.c.seq))))


async def test_append_joins_the_callers_transaction(db: Database) -> None:
    log = log_of(db)
    def two(conn: Connection) -> None:
        assert log.append(conn, "acme", RUN_STARTED, {"model": "x"}, run_id="r1") == 1
        assert log.append(conn, "acme", TOOL_INVOKED, {"capability": "c"}, run_id="r1") == 2

    def failing(conn: Connection) -> None:
        assert log.append(conn, "acme", RUN_COMPLETED, {}, run_id="r1") == 3
        raise RuntimeError("the run's transaction fails")

    await db.run(two)
    with pytest.raises(RuntimeError):
        await db.run(failing)
    assert await log.record("acme", MEMORY_DELETED, {"count": 2}) == 3
    assert await log.record("globex", RUN_STARTED, {}, run_id="r2") == 1

    events = await log.recent("acme")
    assert [(e.seq, e.event, e.run_id) for e in events] == [
        (3, MEMORY_DELETED, None), (2, TOOL_INVOKED, "r1"), (1, RUN_STARTED, "r1"),
    ]
    assert events[0].fields == {"count": 2} and events[0].time.endswith("Z")
    assert [e.seq for e in await log.recent("acme", events=[RUN_STARTED])] == [1]
    assert [e.seq for e in await log.recent("acme", limit=1)] == [3]
    assert (await log.verify("acme")).ok


async def test_the_stored_leaf_is_the_rfc6962_hash_of_the_canonical_event(db: Database) -> None:
    log = log_of(db)
    await log.record("acme", RUN_STARTED, {"b": [1, "é"], "a": None}, run_id="r1")
    [row] = await stored_rows(db, "acme")
    whole = {"tenant_id": "acme", "seq": 1, "run_id": "r1", "event": RUN_STARTED,
             "time": row.time, "fields": {"a": None, "b": [1, "é"]}}
    encoded = json.dumps(whole, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert row.fields == '{"a":null,"b":[1,"é"]}'
    assert row.leaf_hash == leaf_hash(encoded.encode("utf-8")).hex()
    expected_root = root_from_leaf_hashes([leaf_hash(encoded.encode("utf-8"))])
    assert (await log.verify("acme")).root == expected_root.hex()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)


@given(tenant=st.text(min_size=1), run_id=st.none() | st.text(), event=st.text(),
       fields=st.dictionaries(st.text(max_size=8), _json, max_size=4))
def test_canonical_bytes_equal_sorted_compact_json_of_the_whole_event(
    tenant: str, run_id: str | None, event: str, fields: dict[str, Any]
) -> None:
    time = "2026-01-01T00:00:00.000000Z"
    whole = {"tenant_id": tenant, "seq": 7, "run_id": run_id, "event": event, "time": time,
             "fields": fields}
    expected = json.dumps(whole, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    got = canonical_bytes(tenant, 7, run_id, event, time, canonical_json(fields))
    assert got == expected.encode("utf-8")


async def test_fifty_concurrent_appends_get_seq_1_to_50_without_a_gap(db: Database) -> None:
    log = log_of(db)
    seqs = await asyncio.gather(
        *(log.record("acme", TOOL_INVOKED, {"n": n}, run_id="r") for n in range(50))
    )
    assert sorted(seqs) == list(range(1, 51))
    assert [row.seq for row in await stored_rows(db, "acme")] == list(range(1, 51))
    report = await log.verify("acme")
    assert report.ok and report.size == 50


async def test_appends_through_separate_engines_queue_on_the_head_row(database_url: str) -> None:
    """Two engines are two connection pools: as far as the database can tell, two processes."""
    first, second = Database(database_url), Database(database_url)
    try:
        logs = [log_of(first), log_of(second)]

        async def in_transaction(log: AuditLog, n: int) -> int:
            return await log.db.run(
                lambda conn: log.append(conn, "acme", TOOL_INVOKED, {"n": n}))

        seqs = await asyncio.gather(
            *(in_transaction(logs[n % 2], n) for n in range(30)),
            *(logs[n % 2].record("acme", TOOL_INVOKED, {"n": n}) for n in range(30, 50)),
        )
        assert sorted(seqs) == list(range(1, 51))
        assert (await logs[0].verify("acme")).ok
    finally:
        await first.dispose()
        await second.dispose()


async def test_interleaved_writers_and_a_rollback_leave_a_log_that_verifies(
        database_url: str) -> None:
    """Two engines (two processes, to the database) take turns, and one append rolls back."""
    first, second = Database(database_url), Database(database_url)

    def lost(conn: Connection) -> None:
        assert one.append(conn, "acme", TOOL_INVOKED, {"n": "lost"}) == 5
        raise RuntimeError("the work this event records failed")

    try:
        one, other = log_of(first), log_of(second)
        assert await one.record("acme", TOOL_INVOKED, {"n": 1}) == 1
        assert await one.record("acme", TOOL_INVOKED, {"n": 2}) == 2
        assert await other.record("acme", TOOL_INVOKED, {"n": 3}) == 3
        assert await one.record("acme", TOOL_INVOKED, {"n": 4}) == 4
        with pytest.raises(RuntimeError):
            await first.run(lost)
        assert await other.record("acme", TOOL_INVOKED, {"n": 5}) == 5
        assert await one.record("acme", TOOL_INVOKED, {"n": 6}) == 6
        rows = await stored_rows(first, "acme")
        assert [json.loads(r.fields)["n"] for r in rows] == [1, 2, 3, 4, 5, 6]
        report = await one.verify("acme")
        assert report.ok and report.size == 6
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_failed_batch_fails_every_caller_in_it(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    log = log_of(db)

    def broken(*_args: object) -> list[int]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(audit_append, "append_entries", broken)
    results = await asyncio.gather(
        *(log.record("acme", TOOL_INVOKED, {"n": n}) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    monkeypatch.undo()
    assert await log.record("acme", TOOL_INVOKED, {}) == 1


async def test_fields_that_would_leak_content_or_are_not_json_are_refused(db: Database) -> None:
    log = log_of(db)
    with pytest.raises(AuditError, match="digest"):
        await log.record("acme", RUN_STARTED, {"prompt": PROMPT * 5})
    with pytest.raises(AuditError, match="plain JSON"):
        await log.record("acme", RUN_STARTED, {"when": object()})
    with pytest.raises(AuditError, match="run_id"):
        await log.record("acme", RUN_STARTED, {}, run_id="x" * 37)
    with pytest.raises(AuditError, match="tenant_id"):
        await log.record("", RUN_STARTED, {})
    assert await stored_rows(db, "acme") == []


async def test_the_database_refuses_update_and_delete_of_events(db: Database) -> None:
    log = log_of(db)
    await fill(log, "acme", 3)
    await log.sign_checkpoint("acme")
    for statement in (
        "UPDATE audit_events SET fields = '{}' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_events",
        "UPDATE audit_checkpoints SET size = 2",
        "DELETE FROM audit_checkpoints",
        *(() if db.is_sqlite else ("TRUNCATE audit_events", "TRUNCATE audit_checkpoints")),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await sql(db, statement)
    assert len(await stored_rows(db, "acme")) == 3
    assert (await log.verify("acme")).ok


async def tampered_log(db: Database) -> AuditLog:
    """Ten events, a checkpoint at 6, then the triggers dropped."""
    log = log_of(db)
    await fill(log, "acme", 6)
    await log.sign_checkpoint("acme")
    await fill(log, "acme", 4, start=6)
    await fill(log, "globex", 3)
    assert (await log.verify("acme")).ok
    await drop_guards(db)
    return log


async def forged_row(db: Database, seq: int, leaf: str | None = None) -> None:
    fields = canonical_json({"capability": "crm.export", "n": 99})
    time = "2026-01-01T00:00:00.000000Z"
    computed = leaf_hash(canonical_bytes("acme", seq, None, TOOL_INVOKED, time, fields)).hex()
    await execute(db, audit_events.insert().values(
        tenant_id="acme", seq=seq, run_id=None, event=TOOL_INVOKED, time=time,
        fields=fields, leaf_hash=leaf or computed))


TAMPERING = {
    "edit": (["UPDATE audit_events SET fields = '{\"capability\":\"crm.export\"}' "
              "WHERE tenant_id = 'acme' AND seq = 4"], 4, "changed"),
    "edit-time": (["UPDATE audit_events SET time = '2020-01-01T00:00:00.000000Z' "
                   "WHERE tenant_id = 'acme' AND seq = 9"], 9, "changed"),
    "delete": (["DELETE FROM audit_events WHERE tenant_id = 'acme' AND seq = 5"], 5, "missing"),
    "delete-last": (["DELETE FROM audit_events WHERE tenant_id = 'acme' AND seq = 10"], 10,
                    "missing"),
    "swap": (["UPDATE audit_events SET seq = 1000 WHERE tenant_id = 'acme' AND seq = 3",
              "UPDATE audit_events SET seq = 3 WHERE tenant_id = 'acme' AND seq = 7",
              "UPDATE audit_events SET seq = 7 WHERE tenant_id = 'acme' AND seq = 1000"], 3,
             "changed"),
    "move-to-other-tenant": (["UPDATE audit_events SET tenant_id = 'globex', seq = 4 "
                              "WHERE tenant_id = 'acme' AND seq = 8"], 8, "missing"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
async def test_tampering_with_one_row_is_found_and_the_first_bad_seq_named(
        db: Database, kind: str) -> None:
    log = await tampered_log(db)
    statements, first_bad, words = TAMPERING[kind]
    if kind == "move-to-other-tenant":
        await sql(db, "DELETE FROM audit_events WHERE tenant_id = 'globex' AND seq = 3")
        statements = [s.replace("seq = 4", "seq = 3") for s in statements]
    await sql(db, *statements)
    report = await log.verify("acme")
    assert not report.ok
    assert report.first_bad_seq == first_bad
    assert report.reason is not None and words in report.reason


async def test_an_event_inserted_after_the_head_is_found(db: Database) -> None:
    log = await tampered_log(db)
    await forged_row(db, 11)
    report = await log.verify("acme")
    assert (report.ok, report.first_bad_seq) == (False, 11)
    assert "beyond the head" in (report.reason or "")


async def test_an_event_inserted_in_the_middle_is_found(db: Database) -> None:
    log = await tampered_log(db)
    await execute(db, *(
        update(audit_events).where(audit_events.c.tenant_id == "acme", audit_events.c.seq == seq)
        .values(seq=seq + 1)
        for seq in (10, 9, 8)
    ))
    await forged_row(db, 8, leaf="ab" * 32)
    report = await log.verify("acme")
    assert (report.ok, report.first_bad_seq) == (False, 8)


async def test_reading_in_windows_skips_over_a_gap_wider_than_a_window(db: Database) -> None:
    log = await tampered_log(db)
    await sql(db, "DELETE FROM audit_events WHERE tenant_id = 'acme' AND seq IN (3, 4, 5, 6)")
    seqs = [[row[0] for row in batch] async for batch in event_batches(db, "acme", batch_size=2)]
    assert seqs == [[1, 2], [7, 8], [9, 10]]
    upto = [[row[0] for row in batch]
            async for batch in event_batches(db, "acme", after=1, upto=8, batch_size=3)]
    assert upto == [[2], [7, 8]]
    assert (await log.verify("acme")).first_bad_seq == 3


async def rewrite_with_leaf_and_head(db: Database, seq: int) -> None:
    """An attacker who knows the format: the event, its leaf hash and the head, all consistent."""
    fields = canonical_json({"capability": "crm.lookup", "n": 12345})

    def rewrite(conn: Connection) -> None:
        row = conn.execute(select(audit_events).where(
            audit_events.c.tenant_id == "acme", audit_events.c.seq == seq)).one()
        leaf = leaf_hash(canonical_bytes("acme", seq, row.run_id, row.event, row.time, fields))
        conn.execute(update(audit_events).where(
            audit_events.c.tenant_id == "acme", audit_events.c.seq == seq
        ).values(fields=fields, leaf_hash=leaf.hex()))
        leaves = [bytes.fromhex(h) for h in conn.scalars(
            select(audit_events.c.leaf_hash).where(audit_events.c.tenant_id == "acme")
            .order_by(audit_events.c.seq))]
        tree = CompactRange()
        for leaf in leaves:
            tree.append(leaf)
        conn.execute(update(audit_heads).where(audit_heads.c.tenant_id == "acme").values(
            compact_range=json.dumps([h.hex() for h in tree.hashes])))

    await db.run(rewrite)


async def test_a_rewrite_with_a_forged_leaf_hash_is_caught_by_the_signed_checkpoint(
        db: Database) -> None:
    log = await tampered_log(db)
    await rewrite_with_leaf_and_head(db, 3)
    report = await log.verify("acme")
    assert not report.ok and report.checkpoints_checked == 0
    assert report.first_bad_seq == 1
    assert "events 1..6 do not match the checkpoint signed at size 6" in (report.reason or "")


async def test_no_checkpoint_is_signed_over_a_head_that_does_not_extend_the_last(
        db: Database) -> None:
    log = await tampered_log(db)
    await rewrite_with_leaf_and_head(db, 3)
    with pytest.raises(AuditError, match="refusing to sign"):
        await log.sign_checkpoint("acme")
    assert (await log.latest_checkpoint("acme") or pytest.fail()).size == 6


async def test_checkpoints_are_signed_c2sp_notes_of_the_tree_head(db: Database) -> None:
    log = log_of(db, origin_prefix="audit.example.com")
    empty = await log.sign_checkpoint("acme")
    assert (empty.size, empty.root) == (0, CompactRange().root().hex())
    await fill(log, "acme", 5)
    stored = await log.sign_checkpoint("acme")
    assert await log.sign_checkpoint("acme") == stored
    assert await log.latest_checkpoint("acme") == stored
    assert await log.latest_checkpoint("globex") is None

    pinned = [parse_verifier_key(key) for key in log.verifier_keys("acme")]
    signed = parse_checkpoint(verify_note(stored.note, pinned))
    assert signed.origin == "audit.example.com/tenants/acme"
    assert stored.note.split("\n\n")[1].startswith("— audit.example.com/tenants/acme "), (
        "a tenant's checkpoints are signed under a key name equal to its log's origin")
    leaves = [bytes.fromhex(row.leaf_hash) for row in await stored_rows(db, "acme")]
    assert (signed.size, signed.root) == (5, root_from_leaf_hashes(leaves))
    report = await log.verify("acme")
    assert report.ok and report.checkpoints_checked == 2 and report.root == stored.root


async def test_a_checkpoint_signed_by_another_key_or_for_another_log_fails(db: Database) -> None:
    log = log_of(db)
    await fill(log, "acme", 3)
    await log.sign_checkpoint("acme")
    stranger = parse_signer_key(generate_key("tenantry-audit")[0])
    report = await log_of(db, stranger).verify("acme")
    assert not report.ok and report.first_bad_seq is None
    assert "checkpoint at size 3 does not verify" in (report.reason or "")
    assert (await log_of(db, stranger, verifiers=[SIGNER.verifier]).verify("acme")).ok
    moved = await log_of(db, origin_prefix="elsewhere").verify("acme")
    assert not moved.ok and "does not verify" in (moved.reason or ""), (
        "another log's checkpoint is signed under another key name")


async def test_an_empty_log_verifies_and_an_unknown_tenants_is_not_found(db: Database) -> None:
    await tenant_on(db, "quiet", plan())
    report = await log_of(db).verify("quiet")
    assert (report.ok, report.size, report.root) == (True, 0, CompactRange().root().hex())
    with pytest.raises(NotFound, match="no tenant 'nobody'"):
        await log_of(db).verify("nobody")


async def test_inclusion_proofs_verify_against_the_checkpoint_or_the_head(db: Database) -> None:
    log = log_of(db)
    await fill(log, "acme", 13)
    await log.sign_checkpoint("acme")
    await fill(log, "acme", 2, start=13)
    for seq in range(1, 14):
        proof = await log.inclusion_proof("acme", seq)
        assert (proof.index, proof.tree_size, proof.event.seq) == (seq - 1, 13, seq)
        proof.verify(log.verifiers_for("acme")[0])
    unsigned = await log.inclusion_proof("acme", 15)
    assert (unsigned.tree_size, unsigned.checkpoint) == (15, None)
    unsigned.verify()
    with pytest.raises(ProofError, match="no signed checkpoint"):
        unsigned.verify(log.verifiers_for("acme")[0])

    proof = await log.inclusion_proof("acme", 5)
    bad_path = type(proof)(proof.event, proof.leaf_hash, proof.index, proof.tree_size,
                           ("00" * 32, *proof.proof[1:]), proof.root, proof.checkpoint)
    with pytest.raises(ProofError):
        bad_path.verify()
    other_event = type(proof)(
        type(proof.event)("acme", 5, None, TOOL_INVOKED, proof.event.time, {"n": 1}, ""),
        proof.leaf_hash, proof.index, proof.tree_size, proof.proof, proof.root, None)
    with pytest.raises(ProofError, match="does not hash"):
        other_event.verify()
    for missing in (0, 16):
        with pytest.raises(NotFound):
            await log.inclusion_proof("acme", missing)


async def test_shredding_the_salt_unlinks_digests_and_the_log_still_verifies(
        db: Database) -> None:
    log = log_of(db)
    first = await log.digest("acme", PROMPT)
    assert first == await log.digest("acme", PROMPT)
    assert first != await log_of(db).digest("globex", PROMPT)

    def started(conn: Connection) -> None:
        assert digest_with(salt(conn, "acme"), PROMPT) == first
        log.append(conn, "acme", RUN_STARTED, {"prompt": first}, run_id="r1")

    def purged(conn: Connection) -> None:
        shred(conn, "acme")
        log.append(conn, "acme", TENANT_PURGED, {"salt": "shredded"})

    def salt_of(conn: Connection, tenant_id: str) -> str | None:
        return conn.scalar(select(audit_salts.c.salt).where(audit_salts.c.tenant_id == tenant_id))

    await db.run(started)
    await log.sign_checkpoint("acme")
    await db.run(purged)
    assert await db.run(salt_of, "acme") is None
    assert await db.run(salt_of, "globex") is not None
    report = await log.verify("acme")
    assert report.ok and report.size == 2
    assert await log.digest("acme", PROMPT) != first


async def test_secrets_and_prompts_never_reach_the_stored_rows(db: Database) -> None:
    log = log_of(db)
    arguments = {"api_key": SECRET, "query": PROMPT, "account": "ACME-42", "hint": SECRET,
                 "headers": {"Authorization": f"Bearer {SECRET}"}}

    def events(conn: Connection) -> None:
        tenant_salt = salt(conn, "acme")
        log.append(conn, "acme", RUN_STARTED, {"prompt": digest_with(tenant_salt, PROMPT)},
                   run_id="r1")
        log.append(conn, "acme", TOOL_INVOKED,
                   {"capability": "crm.lookup", **arguments_fields(tenant_salt, arguments)},
                   run_id="r1")

    def dump(conn: Connection) -> list[str]:
        return [repr(tuple(row))
                for table in (audit_events, audit_heads, audit_checkpoints, audit_salts)
                for row in conn.execute(select(table))]

    await db.run(events)
    await log.sign_checkpoint("acme")
    dumped = await db.run(dump)
    raw = "\n".join(dumped)
    assert "argument_names" in raw and "account" in raw, "the names of arguments stay"
    for needle in (SECRET, "7c1d0e9b44", PROMPT, "churn", "Initech", "ACME-42"):
        assert needle not in raw, "a value, however short, is kept only as a digest"


async def test_export_verifies_offline_and_a_tampered_bundle_fails(
        db: Database, tmp_path: Path) -> None:
    log = log_of(db)
    await fill(log, "acme", 9)
    await log.sign_checkpoint("acme")
    await fill(log, "acme", 3, start=9)
    bundle = tmp_path / "acme.json"
    await log.export("acme", bundle)

    live, offline = await log.verify("acme"), verify_bundle(bundle)
    assert offline.ok and (offline.size, offline.root, offline.checkpoints_checked) == (
        live.size, live.root, 1)
    assert verify_bundle(bundle, verifier_keys=log.verifier_keys("acme")).ok
    data = json.loads(bundle.read_text())
    assert data["verifier_keys"] == log.verifier_keys("acme") and len(data["events"]) == 12

    stranger = parse_signer_key(generate_key("tenantry-audit")[0]).verifier
    from core.signed_note import format_verifier_key

    pinned = verify_bundle(bundle, verifier_keys=[format_verifier_key(stranger)])
    assert not pinned.ok and "does not verify" in (pinned.reason or "")

    data["events"][4]["fields"]["n"] = 400
    bundle.write_text(json.dumps(data))
    report = verify_bundle(bundle)
    assert (report.ok, report.first_bad_seq) == (False, 5)

    data = json.loads(bundle.read_text())
    data["events"][4]["fields"]["n"] = 4
    del data["events"][7]
    bundle.write_text(json.dumps(data))
    assert verify_bundle(bundle).first_bad_seq == 8

    bundle.write_text("{not json")
    with pytest.raises(AuditError, match="cannot read audit bundle"):
        verify_bundle(bundle)
    bundle.write_text(json.dumps({"format": "tenantry.audit.bundle/1"}))
    with pytest.raises(AuditError, match="malformed audit bundle"):
        verify_bundle(bundle)


def test_load_keys_creates_a_private_key_file_once_and_reuses_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    signer, retired = load_keys(settings)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signer.name == "tenantry-audit" and retired == ()
    content = path.read_text()
    assert load_keys(settings)[0].verifier == signer.verifier
    assert path.read_text() == content

    path.chmod(0o640)
    with pytest.raises(ConfigurationError, match="accessible by group or others"):
        load_keys(settings)
    path.chmod(0o604)
    with pytest.raises(ConfigurationError, match="mode 0604"):
        load_keys(settings)


def test_load_keys_prefers_the_setting_and_refuses_a_bad_key(tmp_path: Path) -> None:
    newest, older = generate_key("ops-audit")[0], generate_key("ops-old")[0]
    settings = Settings(data_dir=tmp_path / "data",
                        audit_signing_key=SecretStr(f"{newest}, {older}"))
    signer, retired = load_keys(settings)
    assert signer.name == "ops-audit" and [v.name for v in retired] == ["ops-old"]
    assert not (tmp_path / "data").exists()
    with pytest.raises(ConfigurationError, match="TENANTRY_AUDIT_SIGNING_KEY"):
        load_keys(Settings(audit_signing_key=SecretStr("PRIVATE+KEY+nope")))
    with pytest.raises(ConfigurationError, match="first in it"):
        rotate_keys(settings)


async def test_checkpoints_signed_before_a_key_rotation_still_verify(
        db: Database, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    signer, retired = load_keys(settings)
    before = AuditLog(db, signer, verifiers=retired)
    await fill(before, "acme", 3)
    old = await before.sign_checkpoint("acme")

    rotate_keys(settings)
    signer, retired = load_keys(settings)
    assert len(retired) == 1
    assert stat.S_IMODE((tmp_path / "data" / KEY_FILE).stat().st_mode) == 0o600
    after = AuditLog(db, signer, verifiers=retired)
    await fill(after, "acme", 2, start=3)
    new = await after.sign_checkpoint("acme")
    report = await after.verify("acme")
    assert report.ok and report.checkpoints_checked == 2
    assert old.note.split("— ")[1].split()[1] != new.note.split("— ")[1].split()[1], (
        "the new checkpoint is signed with the new key")
    bundle = tmp_path / "acme.json"
    await after.export("acme", bundle)
    assert len(json.loads(bundle.read_text())["verifier_keys"]) >= 2
    assert verify_bundle(bundle).ok, "the bundle lists every key it needs"
    assert verify_bundle(bundle, verifier_keys=after.verifier_keys("acme")).ok


async def test_a_bundle_event_carries_the_exact_bytes_of_its_leaf(
        db: Database, tmp_path: Path) -> None:
    """An outside verifier needs no canonical form: it hashes the bytes it is given."""
    log = log_of(db)
    await fill(log, "acme", 3)
    bundle = tmp_path / "acme.json"
    await log.export("acme", bundle)
    leaves = []
    for event in json.loads(bundle.read_text())["events"]:
        assert event["tenant_id"] == "acme"
        leaf = hashlib.sha256(b"\x00" + event["leaf_input"].encode("utf-8")).hexdigest()
        assert leaf == event["leaf_hash"]
        assert json.loads(event["leaf_input"])["fields"] == event["fields"]
        leaves.append(bytes.fromhex(leaf))
    head = json.loads(bundle.read_text())["head"]
    assert root_from_leaf_hashes(leaves).hex() == head["root"]
