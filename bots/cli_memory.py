"""``tenantry memory``: put documents into a tenant's memory, search it, delete from it."""

from __future__ import annotations

from pathlib import Path

import click

from bots.cli_support import root_settings, run_async
from bots.runtime import open_runtime
from core.builder import build_context
from core.context import TenantContext
from core.db.engine import Database
from core.knowledge import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_CHARS


async def _operator_context(db: Database, tenant_id: str) -> TenantContext:
    """The context of an operator acting on a tenant's memory from the command line."""
    grant = await build_context(db, tenant_id=tenant_id, principal_id="operator:cli",
                                principal_kind="service", initiator="user")
    return grant.ctx


@click.group()
def memory() -> None:
    """Manage a tenant's documents (its vector memory)."""


@memory.command("add")
@click.option("--tenant", "tenant_id", required=True, help="The tenant the documents belong to.")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@run_async
async def memory_add(tenant_id: str, paths: tuple[Path, ...]) -> None:
    """Chunk, embed and store PATHS (UTF-8 text) in the tenant's memory.

    A file that is too large or not UTF-8 is skipped, said on stderr, and the command
    then exits with status 1; a new version of a file replaces the old one at once.
    """
    skipped = 0
    async with open_runtime(root_settings()) as rt:
        ctx = await _operator_context(rt.db, tenant_id)
        for path in paths:
            text = read_document(path)
            if text is None:
                skipped += 1
                continue
            with click.progressbar(length=max(1, len(text) // 1000 + 1),
                                   label=f"{path.name}") as bar:
                stored = await rt.knowledge.add(ctx, str(path.name), text,
                                                progress=lambda n: bar.update(n))
            click.echo(f"{path.name}: {stored} chunks")
    if skipped:
        raise click.exceptions.Exit(1)


def read_document(path: Path) -> str | None:
    """The file's text, read no further than the size limit; ``None`` (said) if refused."""
    with path.open("rb") as file:
        data = file.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        click.echo(f"skipped {path}: larger than {MAX_DOCUMENT_BYTES:,} bytes", err=True)
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        click.echo(f"skipped {path}: not UTF-8 text (byte {exc.start})", err=True)
        return None
    if len(text) > MAX_DOCUMENT_CHARS:
        click.echo(f"skipped {path}: larger than {MAX_DOCUMENT_CHARS:,} characters", err=True)
        return None
    return text


@memory.command("search")
@click.option("--tenant", "tenant_id", required=True, help="The tenant whose memory to search.")
@click.option("--top", default=5, show_default=True, type=click.IntRange(1, 20))
@click.argument("query")
@run_async
async def memory_search(tenant_id: str, top: int, query: str) -> None:
    """Search the tenant's memory for QUERY."""
    async with open_runtime(root_settings()) as rt:
        ctx = await _operator_context(rt.db, tenant_id)
        for match in await rt.knowledge.search(ctx, query, top):
            click.echo(f"{match.score:.3f}  {match.source}#{match.chunk}  "
                       f"{match.text[:120].replace(chr(10), ' ')}")


@memory.command("delete")
@click.option("--tenant", "tenant_id", required=True, help="The tenant whose memory to change.")
@click.option("--source", required=True, help="The document name, as shown by search.")
@run_async
async def memory_delete(tenant_id: str, source: str) -> None:
    """Delete every chunk of a document for good; the deletion is audited."""
    async with open_runtime(root_settings()) as rt:
        ctx = await _operator_context(rt.db, tenant_id)
        removed = await rt.knowledge.delete(ctx, source)
        click.echo(f"deleted {removed} chunks of {source}")
