"""How a run ended, as the agent service returns it to a transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.budget.ledger import UsageSummary


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run (or one allocation of it) ended."""

    run_id: str
    tenant_id: str
    status: str
    model: str
    answer: str | None = None
    halt: dict[str, Any] | None = None
    error: str | None = None
    usage: UsageSummary = field(default_factory=UsageSummary)
    refused_tools: tuple[tuple[str, str], ...] = ()
    result: Any = None
    """A direct tool call's result (``AgentService.call_tool``), as the tool returned it."""
