"""The long-lived objects of a Tenantry process, created at startup and closed at exit."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from bots.metrics import Metrics
from bots.posting import Poster
from bots.runner import Direct, Runner
from core.agent import AgentService, RunOutcome
from core.audit.keys import load_keys
from core.audit.log import AuditLog
from core.builtins import AuditRecent, BudgetStatus, RunStatusCapability
from core.crypto import Keyring
from core.db.engine import Database
from core.db.migrate import require_head, upgrade
from core.errors import ConfigurationError
from core.knowledge import Knowledge, KnowledgeSearch
from core.models import ModelFactory
from core.settings import Settings
from core.tools import CapabilityRegistry, ToolCapability
from core.vectors.base import TenantPartitions, VectorAdmin, VectorStore, check_resolver
from core.vectors.embedded import EmbeddedVectorAdmin, EmbeddedVectorStore
from core.vectors.embeddings import Embedder, HashingEmbedder, WordLlamaEmbedder

if TYPE_CHECKING:
    from bots.jobs.queue import JobQueue

Deliver = Callable[[RunOutcome], Awaitable[None]]


@dataclass
class Runtime:
    """What every command and request handler of one process shares.

    Attributes:
        deliverers: How each mounted transport renders the outcome of a run resumed
            without a request of its own (at startup, or on a worker) into the place
            it was asked in.
        posters: How each mounted transport posts a digest, by destination kind
            (``bots.posting``).
        jobs: The deployment's job queue, where this process uses one (PostgreSQL).
        runner: Where the transports' accepted runs execute (``bots.runner``): at once
            unless the process sets another.
        metrics: This process's ``/metrics``; it observes the agent service's runs.
    """

    settings: Settings
    db: Database
    models: ModelFactory
    registry: CapabilityRegistry
    audit: AuditLog
    keyring: Keyring
    agent: AgentService
    knowledge: Knowledge
    vector_admin: VectorAdmin
    """Erases a tenant's vectors: for operators' commands, never given to a capability."""
    deliverers: list[Deliver] = field(default_factory=list)
    posters: dict[str, Poster] = field(default_factory=dict)
    jobs: JobQueue | None = None
    metrics: Metrics = field(default_factory=Metrics)
    runner: Runner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = Direct(self.agent)
        self.agent.observers.append(self.metrics)


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, migrate: bool | None = None
) -> AsyncIterator[Runtime]:
    """Open the database and clients; the embedded default migrates itself on start.

    Args:
        migrate: Apply migrations first. Defaults to on for SQLite (the embedded
            default) and off for PostgreSQL, where ``tenantry db upgrade`` is a
            deliberate deployment step.

    Raises:
        ConfigurationError: the database is at another migration than this code's.
    """
    db = Database(settings.database_url)
    models = ModelFactory(settings)
    try:
        if migrate if migrate is not None else db.is_sqlite:
            await upgrade(db)
        await require_head(db)
        signer, retired = load_keys(settings)
        audit = AuditLog(db, signer, verifiers=retired, origin_prefix=settings.audit_origin)
        async with open_vectors(settings, db) as (store, vector_admin):
            embedder = await open_embedder(settings)
            knowledge = Knowledge(store, embedder, audit)
            registry = CapabilityRegistry([
                BudgetStatus(db), AuditRecent(audit), RunStatusCapability(db),
                KnowledgeSearch(knowledge), *plugin_capabilities(settings, db),
            ])
            agent = AgentService(db, settings, models, audit, registry)
            yield Runtime(settings=settings, db=db, models=models, registry=registry,
                          audit=audit, keyring=Keyring.from_settings(settings), agent=agent,
                          knowledge=knowledge, vector_admin=vector_admin)
    finally:
        await models.aclose()
        await db.dispose()


async def open_embedder(settings: Settings) -> Embedder:
    """The configured embedding model; WordLlama's weights ship inside its wheel."""
    if settings.embedder == "hashing":
        return HashingEmbedder()
    return await WordLlamaEmbedder.load()


@asynccontextmanager
async def open_vectors(
    settings: Settings, db: Database
) -> AsyncIterator[tuple[VectorStore, VectorAdmin]]:
    """The configured vector store and its administrative side, after checking it can
    never mix tenants' partitions.

    Raises:
        ConfigurationError: the partition resolver would share or default a partition,
            or Pinecone is chosen without its settings.
    """
    resolver = TenantPartitions()
    check_resolver(resolver)
    if settings.vector_store == "embedded":
        yield (EmbeddedVectorStore(db, resolver, cache_bytes=settings.vector_cache_mb * 2**20),
               EmbeddedVectorAdmin(db))
        return
    if settings.pinecone_api_key is None or not settings.pinecone_host:
        raise ConfigurationError(
            "vector_store=pinecone needs TENANTRY_PINECONE_API_KEY and TENANTRY_PINECONE_HOST")
    from core.vectors.pinecone_store import PineconeVectorAdmin, PineconeVectorStore

    store = await PineconeVectorStore.connect(
        api_key=settings.pinecone_api_key.get_secret_value(), host=settings.pinecone_host,
        resolver=resolver)
    try:
        yield store, PineconeVectorAdmin(store)
    finally:
        await store.close()


def plugin_capabilities(settings: Settings, db: Database) -> list[ToolCapability]:
    """Capabilities a SaaS team adds without editing Tenantry.

    From the ``tenantry.capabilities`` entry-point group and ``capability_modules``
    (``package.module:factory``); each factory takes ``(settings, db)`` and returns an
    iterable of capabilities.
    """
    factories: list[Any] = [ep.load() for ep in entry_points(group="tenantry.capabilities")]
    for path in settings.capability_modules:
        module_name, _, attribute = path.partition(":")
        if not attribute:
            raise ConfigurationError(f"capability module {path!r} must be 'module:factory'")
        try:
            factories.append(getattr(importlib.import_module(module_name), attribute))
        except Exception as exc:  # whatever the module raises while it is imported
            raise ConfigurationError(
                f"cannot load capability factory {path!r} (TENANTRY_CAPABILITY_MODULES): "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
    found: list[ToolCapability] = []
    for factory in factories:
        for capability in factory(settings, db):
            if not isinstance(capability, ToolCapability):
                raise ConfigurationError(f"{factory!r} returned {capability!r}, not a capability")
            found.append(capability)
    return found
