"""``tenantry memory``: put documents into a tenant's memory, search it, delete from it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bots.cli_support import echo_json, json_option, root_settings, run_async
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
    """Manage a tenant's documents (its vector memory).

    Example: tenantry memory search --tenant acme "refund policy" --json
    """


@memory.command("add", help=f"""Chunk, embed and store PATHS in the tenant's memory.

    Each file must be UTF-8 text of at most {MAX_DOCUMENT_BYTES:,} bytes and
    {MAX_DOCUMENT_CHARS:,} characters, without NUL characters (PostgreSQL cannot store
    them). Every file is read before any is stored: one that is refused stops the
    command with status 1 and nothing stored, unless --skip-unreadable skips it (said on
    stderr). A new version of a file replaces the old one at once. A progress bar
    shows on a terminal.

    Example: tenantry memory add --tenant acme docs/faq.md docs/refunds.md
    """)
@click.option("--tenant", "tenant_id", required=True, help="The tenant the documents belong to.")
@click.option("--skip-unreadable", is_flag=True,
              help="Skip a file that is too large, not UTF-8 or holds NUL characters, "
                   "and store the others.")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@run_async
async def memory_add(tenant_id: str, skip_unreadable: bool, paths: tuple[Path, ...]) -> None:
    documents: list[tuple[Path, str]] = []
    for path in paths:
        text, problem = read_document(path)
        if problem is None:
            documents.append((path, text))
        elif skip_unreadable:
            click.echo(f"skipped {path}: {problem}", err=True)
        else:
            raise click.ClickException(
                f"{path}: {problem} (nothing stored; --skip-unreadable stores the others)")
    async with open_runtime(root_settings()) as rt:
        ctx = await _operator_context(rt.db, tenant_id)
        for path, text in documents:
            with click.progressbar(length=max(1, len(text) // 1000 + 1), label=path.name,
                                   file=sys.stderr, hidden=not sys.stderr.isatty()) as bar:
                stored = await rt.knowledge.add(ctx, str(path.name), text,
                                                progress=lambda n: bar.update(n))
            click.echo(f"{path.name}: {stored} chunks")


def read_document(path: Path) -> tuple[str, str | None]:
    """The file's text, read no further than the size limit, or why it is refused."""
    with path.open("rb") as file:
        data = file.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        return "", f"larger than {MAX_DOCUMENT_BYTES:,} bytes"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "", f"not UTF-8 text (byte {exc.start})"
    if len(text) > MAX_DOCUMENT_CHARS:
        return "", f"larger than {MAX_DOCUMENT_CHARS:,} characters"
    if "\x00" in text:
        return "", f"holds NUL characters (first at character {text.index(chr(0))})"
    return text, None


@memory.command("search")
@click.option("--tenant", "tenant_id", required=True, help="The tenant whose memory to search.")
@click.option("--top", default=5, show_default=True, type=click.IntRange(1, 20),
              help="How many chunks to show.")
@json_option('[{"source": str, "chunk": int, "score": float, "text": str}], best first')
@click.argument("query")
@run_async
async def memory_search(tenant_id: str, top: int, as_json: bool, query: str) -> None:
    """Search the tenant's memory for QUERY.

    Example: tenantry memory search --tenant acme "refund policy" --top 3
    """
    async with open_runtime(root_settings()) as rt:
        ctx = await _operator_context(rt.db, tenant_id)
        found = await rt.knowledge.search(ctx, query, top)
    if as_json:
        echo_json([{"source": m.source, "chunk": m.chunk, "score": m.score, "text": m.text}
                   for m in found])
        return
    for match in found:
        click.echo(f"{match.score:.3f}  {match.source}#{match.chunk}  "
                   f"{match.text[:120].replace(chr(10), ' ')}")


@memory.command("delete")
@click.option("--tenant", "tenant_id", required=True, help="The tenant whose memory to change.")
@click.option("--source", required=True, help="The document name, as shown by search.")
@run_async
async def memory_delete(tenant_id: str, source: str) -> None:
    """Delete every chunk of a document for good; the deletion is audited.

    Example: tenantry memory delete --tenant acme --source faq.md
    """
    async with open_runtime(root_settings()) as rt:
        ctx = await _operator_context(rt.db, tenant_id)
        removed = await rt.knowledge.delete(ctx, source)
        click.echo(f"deleted {removed} chunks of {source}")
