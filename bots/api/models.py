"""The HTTP API's request and response bodies: validated on the way in, documented in
``/v1/openapi.json`` from the same classes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROMPT_MAX = 16_000
"""Characters a prompt may have; a longer one is 422, before anything runs."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunRequest(_Body):
    """``POST /v1/runs``: what to ask, and optionally which conversation it continues."""

    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200,
                                        pattern=r"^[A-Za-z0-9._:-]+$")


class RunAccepted(BaseModel):
    """The run a request started (or, retried with its ``Idempotency-Key``, had started)."""

    id: str
    status: str


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


class ProblemBody(BaseModel):
    """Every error (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
