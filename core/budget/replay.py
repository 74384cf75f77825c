"""What earlier allocations of a run recorded, so a resume does no paid work twice.

A fresh run starts empty; a resumed run loads its ledger rows and tool effects once,
when it starts. A model step whose response was paid for and settled returns that
response; a tool step whose effect was recorded returns that result. Any other step
is attempted anew under the next attempt id (``model:3#2`` is the second attempt at
``model:3``), so a ledger row is never written twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.budget.ledger import LedgerRow


def base_step(step_id: str) -> str:
    """The step an attempt belongs to: ``model:3#2`` is the second attempt at ``model:3``."""
    return step_id.split("#", 1)[0]


@dataclass
class Replay:
    """A run's recorded attempts and effects, looked up without a query."""

    attempts_by_step: dict[str, list[str]] = field(default_factory=dict)
    responses: dict[str, str] = field(default_factory=dict)
    effects: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[LedgerRow], effects: Mapping[str, str]) -> Replay:
        """The index of a resumed run's ledger rows (oldest first) and tool effects."""
        replay = cls(effects=dict(effects))
        for row in rows:
            step = base_step(row.step_id)
            replay.attempts_by_step.setdefault(step, []).append(row.step_id)
            if row.status == "settled" and not row.retried and row.response is not None:
                replay.responses[step] = row.response
        return replay

    def next_attempt(self, step: str) -> str:
        """Open a new attempt at ``step`` and return its step id."""
        attempts = self.attempts_by_step.setdefault(step, [])
        attempt = step if not attempts else f"{step}#{len(attempts) + 1}"
        attempts.append(attempt)
        return attempt
