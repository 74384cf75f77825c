"""Capabilities and their per-run bindings.

A ``ToolCapability`` is what a plan licenses (``knowledge.search``); for one run it
resolves to a ``ToolBinding`` or to nothing. Only resolved bindings are ever shown to
the model. Authorisation, idempotency, cost and audit are added once, around every
binding, by ``core.toolset``; a tool author writes only the function, which gets the
run's context as pydantic-ai's ``RunContext`` (its ``deps``)::

    async def search(ctx: RunContext[TenantContext], query: str) -> list[str]:
        return await notes.search(ctx.deps, query)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic_ai import RunContext

from core.context import TenantContext
from core.errors import ConfigurationError

_CAPABILITY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def tool_name(capability: str) -> str:
    """The name the model sees: providers allow only ``[a-zA-Z0-9_-]``."""
    return capability.replace(".", "__")


def idempotency_key(ctx: RunContext[TenantContext]) -> str:
    """A key for the tool call being made, the same every time this call is attempted.

    It is ``<run id>:<step id>``, and a resumed run replays the model's tool calls
    with their ids, so a tool that passes it to an outside API (an ``Idempotency-Key``
    header, a client reference) lets that API drop a repeat of a call whose result
    Tenantry never recorded.
    """
    return f"{ctx.deps.run_id}:tool:{ctx.tool_call_id or 'unknown'}"


@dataclass(frozen=True, slots=True)
class ToolBinding:
    """One capability made concrete for one run.

    Attributes:
        capability: The capability name, e.g. ``knowledge.search``.
        description: What the model is told the tool does.
        function: The async function. Its first parameter is the run's
            ``RunContext[TenantContext]``; the type hints of the others are the
            argument schema the model sees.
        cost_microcents: The declared cost of one call, reserved before it runs.
        resource_kind: The kind of resource a call touches (``run``), for authorisation.
        resource_arg: The argument holding that resource's id.
        retryable: Whether a call that may have run, without its result being
            recorded (the process died in between), may simply be made again. A tool
            with an outside effect that its API cannot deduplicate says ``False``: the
            run then halts for a person instead of repeating it.
    """

    capability: str
    description: str
    function: Callable[..., Awaitable[Any]]
    cost_microcents: int = 0
    resource_kind: str | None = None
    resource_arg: str | None = None
    retryable: bool = True

    @property
    def name(self) -> str:
        """The tool name shown to the model."""
        return tool_name(self.capability)


@runtime_checkable
class ToolCapability(Protocol):
    """Something a plan can license and a run can use."""

    name: str
    description: str

    def resolve(self, ctx: TenantContext) -> ToolBinding | None:
        """The binding for this run, or ``None`` when this tenant cannot have it."""


class CapabilityRegistry:
    """All capabilities the deployment knows, by name."""

    def __init__(self, capabilities: Iterable[ToolCapability] = ()) -> None:
        self._capabilities: dict[str, ToolCapability] = {}
        for capability in capabilities:
            self.add(capability)

    def add(self, capability: ToolCapability) -> None:
        """Register a capability; names are unique and dotted (``area.verb``)."""
        if not _CAPABILITY.match(capability.name):
            raise ConfigurationError(
                f"capability name {capability.name!r} must be dotted lowercase, "
                "like 'knowledge.search'"
            )
        if capability.name in self._capabilities:
            raise ConfigurationError(f"capability {capability.name!r} is registered twice")
        self._capabilities[capability.name] = capability

    def __contains__(self, name: object) -> bool:
        return name in self._capabilities

    def names(self) -> list[str]:
        """Every registered capability name, sorted."""
        return sorted(self._capabilities)

    def resolve(self, ctx: TenantContext) -> list[ToolBinding]:
        """The bindings of one run: only capabilities in the run's scope, resolved."""
        bindings = []
        for name in sorted(ctx.scope & self._capabilities.keys()):
            binding = self._capabilities[name].resolve(ctx)
            if binding is not None:
                bindings.append(binding)
        return bindings
