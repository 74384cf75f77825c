"""``tenantry audit``: verify, prove, checkpoint, export and read tenants' audit logs.

``verify`` exits with status 1 and names the first bad sequence number when a log
or a bundle does not hold, so it can gate a script or a cron job; ``verify --bundle``
needs no database, only the file (and, ideally, the published verifier key).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import click

from bots.cli_support import echo_json, json_option, root_settings, run_async
from core.audit.bundle import verify_bundle
from core.audit.consistency import prove_consistency, verify_against
from core.audit.keys import load_keys, rotate_keys
from core.audit.log import AuditLog
from core.audit.verify import VerifyReport
from core.db.engine import Database
from core.db.schema import as_utc
from core.errors import NotFound, TenantryError
from core.merkle import ProofError
from core.runs import is_session_id, session_runs

T = TypeVar("T")


@asynccontextmanager
async def open_log() -> AsyncIterator[AuditLog]:
    """The deployment's audit log, its database disposed of afterwards."""
    settings = root_settings()
    signer, retired = load_keys(settings)
    db = Database(settings.database_url)
    try:
        yield AuditLog(db, signer, verifiers=retired, origin_prefix=settings.audit_origin)
    finally:
        await db.dispose()


async def with_log(fn: Callable[[AuditLog], Awaitable[T]]) -> T:
    """Run ``fn`` against the deployment's audit log."""
    async with open_log() as log:
        return await fn(log)


VERIFY_SHAPE = ('{"source": str, "ok": bool, "size": int, "root": str, '
                '"checkpoints_checked": int, "first_bad_seq": int|null, "reason": str|null}')


def _report(report: VerifyReport, source: str, as_json: bool = False) -> None:
    if as_json:
        echo_json({"source": source, "ok": report.ok, "size": report.size,
                   "root": report.root, "checkpoints_checked": report.checkpoints_checked,
                   "first_bad_seq": report.first_bad_seq, "reason": report.reason})
        if not report.ok:
            raise click.exceptions.Exit(1)
        return
    if report.ok:
        click.echo(f"ok: {source}: {report.size} events, root {report.root}, "
                   f"{report.checkpoints_checked} signed checkpoints hold")
        return
    where = "" if report.first_bad_seq is None else f" first bad seq {report.first_bad_seq}:"
    click.echo(f"FAILED: {source}:{where} {report.reason} "
               f"({report.size} events checked, {report.checkpoints_checked} checkpoints held)",
               err=True)
    raise click.exceptions.Exit(1)


@click.group()
def audit() -> None:
    """Check and export tenants' tamper-evident audit logs.

    Example: tenantry audit verify --tenant acme
    """


@audit.command("verify")
@click.option("--tenant", "tenant_id", help="Verify this tenant's log in the database.")
@click.option("--bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Verify an exported bundle offline instead.")
@click.option("--key", "verifier_keys", multiple=True,
              help="With --bundle: a published verifier key to trust instead of the ones "
                   "inside the bundle (repeat for each).")
@click.option("--against", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --tenant: a signed checkpoint you kept; the log must extend it "
                   "(not rolled back, not rewritten).")
@json_option(VERIFY_SHAPE + "; exit status 1 when not ok")
def audit_verify(tenant_id: str | None, bundle: Path | None,
                 verifier_keys: tuple[str, ...], against: Path | None, as_json: bool) -> None:
    """Rebuild a log's Merkle tree and check every event, checkpoint and the head.

    With --against, also prove that the log extends a checkpoint kept outside it.

    Example: tenantry audit verify --tenant acme --json
    """
    if (tenant_id is None) == (bundle is None):
        raise click.UsageError("give exactly one of --tenant and --bundle")
    if against is not None and tenant_id is None:
        raise click.UsageError("--against checks a tenant's log: give --tenant")
    if bundle is not None:
        try:
            report = verify_bundle(bundle, verifier_keys=list(verifier_keys) or None)
        except TenantryError as exc:
            raise click.ClickException(str(exc)) from None
        _report(report, str(bundle), as_json)
        return
    assert tenant_id is not None
    note = None if against is None else against.read_text(encoding="utf-8")
    report = run_async(_verify_tenant)(tenant_id, note)
    _report(report, f"tenant {tenant_id}", as_json)
    if note is not None and not as_json:
        click.echo(f"ok: the log extends the checkpoint in {against}")


async def _verify_tenant(tenant_id: str, note: str | None) -> VerifyReport:
    if note is None:
        return await with_log(lambda log: log.verify(tenant_id))
    return await with_log(lambda log: verify_against(log, tenant_id, note))


@audit.command("checkpoints")
@click.option("--tenant", "tenant_id", required=True, help="Whose log.")
@click.option("--size", type=click.IntRange(min=0), default=None,
              help="Print the signed checkpoint of this size, to keep (e.g. in a file for "
                   "`verify --against`).")
@json_option('[{"size": int, "created_at": ISO 8601, "root": str, "note": str}], oldest '
             'first')
@run_async
async def audit_checkpoints(tenant_id: str, size: int | None, as_json: bool) -> None:
    """List the log's signed checkpoints: size, time, root; or print one in full.

    Example: tenantry audit checkpoints --tenant acme --json
    """
    async def go(log: AuditLog) -> None:
        stored = await log.checkpoints(tenant_id)
        if as_json and size is None:
            echo_json([{"size": item.size, "created_at": item.created_at, "root": item.root,
                        "note": item.note} for item in stored])
            return
        if size is None:
            for item in stored:
                click.echo(f"{item.size}\t{item.created_at}\t{item.root}")
            if not stored:
                click.echo(f"the log of {tenant_id} has no signed checkpoint yet", err=True)
            return
        chosen = next((item for item in stored if item.size == size), None)
        if chosen is None:
            raise NotFound(f"the log of {tenant_id!r} has no checkpoint of size {size}")
        click.echo(chosen.note, nl=False)

    await with_log(go)


@audit.command("consistency")
@click.option("--tenant", "tenant_id", required=True, help="Whose log.")
@click.option("--from", "size1", type=click.IntRange(min=1), required=True,
              help="The size of the older tree (a checkpoint you kept).")
@click.option("--to", "size2", type=click.IntRange(min=1), default=None,
              help="The size of the newer tree (default: the whole log).")
@run_async
async def audit_consistency(tenant_id: str, size1: int, size2: int | None) -> None:
    """Print the RFC 6962 proof that the log at --to extends the log at --from (JSON).

    Example: tenantry audit consistency --tenant acme --from 120
    """
    async def go(log: AuditLog) -> None:
        proof = await prove_consistency(log, tenant_id, size1, size2)
        click.echo(json.dumps(proof.as_json(), indent=2))
        click.echo(f"verified: the tree of {proof.size2} events extends the tree of "
                   f"{proof.size1}", err=True)

    await with_log(go)


@audit.group("keys")
def audit_keys() -> None:
    """The checkpoint signing keys.

    Example: tenantry audit keys show --tenant acme
    """


@audit_keys.command("rotate")
def audit_keys_rotate() -> None:
    """Make a new signing key; the old ones stay, so older checkpoints still verify.

    Example: tenantry audit keys rotate
    """
    try:
        rotate_keys(root_settings())
    except TenantryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("a new key signs from now on; checkpoints signed before keep verifying "
               "under the old keys. Publish each tenant's new verifier key "
               "(`tenantry audit keys show --tenant T`).")


@audit_keys.command("show")
@click.option("--tenant", "tenant_id", required=True, help="Whose verifier keys.")
@run_async
async def audit_keys_show(tenant_id: str) -> None:
    """Print the verifier keys of a tenant's checkpoints, newest first (public).

    Example: tenantry audit keys show --tenant acme
    """
    async def go(log: AuditLog) -> None:
        for key in log.verifier_keys(tenant_id):
            click.echo(key)

    await with_log(go)


@audit.command("export")
@click.option("--tenant", "tenant_id", required=True, help="Whose log to export.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The bundle file to write (JSON).")
@run_async
async def audit_export(tenant_id: str, out: Path) -> None:
    """Write a self-contained bundle: events, signed checkpoints, verifier key.

    Example: tenantry audit export --tenant acme --out acme-audit.json
    """
    async def go(log: AuditLog) -> None:
        await log.export(tenant_id, out)
        keys = " ".join(f"--key '{key}'" for key in log.verifier_keys(tenant_id))
        click.echo(f"exported the audit log of {tenant_id} to {out}; check it with "
                   f"`tenantry audit verify --bundle {out} {keys}`")

    await with_log(go)


@audit.command("proof")
@click.option("--tenant", "tenant_id", required=True, help="Whose log.")
@click.option("--seq", type=click.IntRange(min=1), required=True, help="The event to prove.")
@run_async
async def audit_proof(tenant_id: str, seq: int) -> None:
    """Print the inclusion proof of one event (JSON) and check it.

    The JSON: {"tenant_id": str, "seq": int, "event": str, "leaf_hash": str, "index": int,
    "tree_size": int, "root": str, "proof": [str], "checkpoint": str|null}; whether it
    verifies goes to stderr, with exit status 1 if it does not.

    Example: tenantry audit proof --tenant acme --seq 42
    """
    async def go(log: AuditLog) -> None:
        proof = await log.inclusion_proof(tenant_id, seq)
        click.echo(json.dumps({
            "tenant_id": tenant_id, "seq": seq, "event": proof.event.event,
            "leaf_hash": proof.leaf_hash, "index": proof.index, "tree_size": proof.tree_size,
            "root": proof.root, "proof": list(proof.proof), "checkpoint": proof.checkpoint,
        }, indent=2))
        try:
            proof.verify(*(log.verifiers_for(tenant_id) if proof.checkpoint else ()))
        except ProofError as error:
            click.echo(f"FAILED: the proof does not verify: {error}", err=True)
            raise click.exceptions.Exit(1) from None
        signed = "the signed checkpoint" if proof.checkpoint else "the current (unsigned) head"
        click.echo(f"verified: event {seq} is in the tree of {proof.tree_size} events "
                   f"({signed})", err=True)

    await with_log(go)


@audit.command("checkpoint")
@click.option("--tenant", "tenant_id", required=True, help="Whose log.")
@run_async
async def audit_checkpoint(tenant_id: str) -> None:
    """Sign the log's current tree head now, and print the signed checkpoint.

    Example: tenantry audit checkpoint --tenant acme > acme-checkpoint.txt
    """
    async def go(log: AuditLog) -> None:
        stored = await log.sign_checkpoint(tenant_id)
        click.echo(stored.note, nl=False)

    await with_log(go)


SESSION_SHAPE = ('[{"run_id": str, "initiator": str, "principal_id": str, "status": str, '
                 '"created_at": ISO 8601}], oldest first')


def _session_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not is_session_id(value):
        raise click.BadParameter("a session id is 1-100 letters, digits or . _ : -")
    return value


@audit.command("session")
@click.option("--tenant", "tenant_id", required=True, help="Whose runs.")
@click.argument("session", callback=_session_id)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option(SESSION_SHAPE)
@run_async
async def audit_session(tenant_id: str, session: str, limit: int, as_json: bool) -> None:
    """List the runs of one session (``X-Tenantry-Session``) across transports.

    A session is stitched here, from the tenant's own runs only: the same session id
    in another tenant is another session.

    Example: tenantry audit session --tenant acme checkout-7 --json
    """
    async def go(log: AuditLog) -> None:
        found = await log.db.run(session_runs, tenant_id, session, limit)
        if as_json:
            echo_json([{"run_id": run.id, "initiator": run.initiator,
                        "principal_id": run.principal_id, "status": run.status,
                        "created_at": as_utc(run.created_at)} for run in found])
            return
        if not found:
            click.echo(f"no runs of session {session} in tenant {tenant_id}", err=True)
        for run in found:
            click.echo(f"{run.id}\t{run.initiator}\t{run.principal_id}\t{run.status}\t"
                       f"{as_utc(run.created_at).isoformat()}")

    await with_log(go)


@audit.command("recent")
@click.option("--tenant", "tenant_id", required=True, help="Whose log.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--event", "events", multiple=True, help="Only this event type (repeatable).")
@json_option('[{"seq": int, "time": str, "event": str, "run_id": str|null, "fields": {...}}], '
             'newest first')
@run_async
async def audit_recent(tenant_id: str, limit: int, events: tuple[str, ...],
                       as_json: bool) -> None:
    """Print the newest events, newest first.

    Example: tenantry audit recent --tenant acme --limit 5 --event tool.refused
    """
    async def go(log: AuditLog) -> None:
        found = await log.recent(tenant_id, limit, events or None)
        if as_json:
            echo_json([{"seq": item.seq, "time": item.time, "event": item.event,
                        "run_id": item.run_id, "fields": item.fields} for item in found])
            return
        for item in found:
            fields = json.dumps(item.fields, sort_keys=True, ensure_ascii=False)
            click.echo(f"{item.seq}\t{item.time}\t{item.event}\t{item.run_id or '-'}\t{fields}")

    await with_log(go)
