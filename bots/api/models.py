"""The HTTP API's request and response bodies: validated on the way in, documented in
``/v1/openapi.json`` from the same classes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROMPT_MAX = 16_000
"""Characters a prompt may have; a longer one is 422, before anything runs."""
NO_NUL = r"^[^\x00]*$"
"""Text the databases can store: PostgreSQL's text holds no NUL character."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunRequest(_Body):
    """``POST /v1/runs``: what to ask, and optionally which conversation it continues."""

    prompt: str = Field(min_length=1, max_length=PROMPT_MAX, pattern=NO_NUL)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200,
                                        pattern=r"^[A-Za-z0-9._:-]+$")


class RunAccepted(BaseModel):
    """The run a request started (or, retried with its ``Idempotency-Key``, had started)."""

    id: str
    status: str


class ServerSentEvent(BaseModel):
    """One event of ``GET /v1/runs/{id}/events``, as a client's event source reads it:
    an audit event (``event`` its type, ``id`` its sequence number, ``data`` its JSON)
    or the closing ``run`` event (no ``id``; ``data`` the run as ``GET`` shows it)."""

    event: str
    data: str
    id: str | None = None


class Usage(BaseModel):
    """What a run has used so far."""

    input_tokens: int
    output_tokens: int
    tool_calls: int
    cost_microcents: int


class RunView(BaseModel):
    """``GET /v1/runs/{id}``: a run's state, answer, usage and halt."""

    id: str
    status: Literal["queued", "running", "halted", "completed", "failed", "refused"]
    conversation_id: str | None
    answer: str | None
    usage: Usage
    halt: dict[str, Any] | None
    error: str | None
    created_at: str


class Figure(BaseModel):
    """One figure of the month: what was charged (open reservations included) against
    the plan's allowance."""

    used: int
    allowance: int


class RecentRunView(BaseModel):
    """One of the key principal's newest runs."""

    id: str
    status: str
    cost_microcents: int
    created_at: str


class PrincipalUsage(BaseModel):
    """The key principal's share of the month, and its newest runs (newest first)."""

    principal_id: str
    runs: int
    tokens: int
    cost_microcents: int
    tool_calls: int
    recent: list[RecentRunView]


class BudgetView(BaseModel):
    """``GET /v1/budget``: the tenant's month against its plan, and the key's share."""

    tenant_id: str
    plan_id: str
    period: str
    time_zone: str
    suspended: bool
    tokens: Figure
    cost_microcents: Figure
    tool_calls: Figure
    principal: PrincipalUsage


class CheckpointView(BaseModel):
    """``GET /v1/audit/checkpoint``: the newest signed head of the tenant's audit log."""

    size: int
    root: str
    note: str
    created_at: str


class ProofView(BaseModel):
    """``GET /v1/audit/proof``: an RFC 6962 proof that event ``seq`` is in the tree.

    ``checkpoint`` is the signed note of that tree, or ``null`` when the proof is
    against the current, not yet signed head.
    """

    seq: int
    event: str
    leaf_hash: str
    index: int
    tree_size: int
    root: str
    proof: list[str]
    checkpoint: str | None


class ProblemBody(BaseModel):
    """Every error (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str


class DocumentRequest(_Body):
    """``POST /v1/memory``: one document; its ``source`` name replaces any earlier one's."""

    source: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f/]+$")
    text: str = Field(min_length=1, pattern=NO_NUL)


class DocumentStored(BaseModel):
    """How many chunks the document was stored as."""

    source: str
    chunks: int


class SearchRequest(_Body):
    """``POST /v1/memory/search``: in the body, so a query never lands in an access log."""

    query: str = Field(min_length=1, max_length=2_000, pattern=NO_NUL)
    top: int = Field(default=5, ge=1, le=20)


class MatchView(BaseModel):
    """One chunk of the tenant's memory that matches, with its score."""

    source: str
    chunk: int
    score: float
    text: str


class DocumentDeleted(BaseModel):
    """How many chunks of the document were deleted."""

    source: str
    chunks: int
