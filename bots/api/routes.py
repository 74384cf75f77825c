"""Every ``/v1`` operation in one list: ``api_app`` registers these, and
``/v1/openapi.json`` describes these, so a route cannot exist undocumented."""

from __future__ import annotations

from typing import Any

from bots.api import memory, runs, standing, stream
from bots.api.models import (
    BudgetView,
    CheckpointView,
    DocumentDeleted,
    DocumentRequest,
    DocumentStored,
    MatchView,
    ProofView,
    RunAccepted,
    RunRequest,
    RunView,
    SearchRequest,
    ServerSentEvent,
)
from bots.api.openapi import Param, Route, serve_document
from core.runs import SESSION_HEADER

_TOKEN = {"type": "string", "pattern": runs.TOKEN.pattern}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", serve_document, 200, dict[str, Any], public=True,
          tags=("meta",)),
    Route("POST", "/runs", runs.start_run, 202, RunAccepted, body=RunRequest, params=(
        Param("Idempotency-Key", "header", _TOKEN,
              "retried with the same key and body, the request finds the run it started"),
        Param(SESSION_HEADER, "header", _TOKEN,
              "the caller's session, to list its runs across transports"),
    ), errors=(400, 409, 503), tags=("runs",), links=(
        ("read_run", "run_id", "id"), ("run_events", "run_id", "id"),
        ("resume_run", "run_id", "id"))),
    Route("GET", "/runs/{run_id}", runs.read_run, 200, RunView, errors=(404,),
          tags=("runs",)),
    Route("POST", "/runs/{run_id}/resume", runs.resume_run, 202, RunAccepted,
          errors=(404, 409), tags=("runs",)),
    Route("GET", "/runs/{run_id}/events", stream.run_events, 200, ServerSentEvent, params=(
        Param("Last-Event-ID", "header", {"type": "string", "pattern": r"^[0-9]{1,18}$"},
              "the id of the last event received: the stream resumes after it"),
    ), errors=(400, 404), media="text/event-stream", tags=("runs",)),
    Route("GET", "/budget", standing.read_budget, 200, BudgetView, tags=("standing",)),
    Route("GET", "/audit/checkpoint", standing.read_checkpoint, 200, CheckpointView,
          errors=(404,), tags=("standing",)),
    Route("GET", "/audit/proof", standing.read_proof, 200, ProofView, params=(
        Param("seq", "query", {"type": "integer", "minimum": 1, "maximum": 10**15 - 1},
              "the event's sequence number in the tenant's log", required=True),
    ), errors=(404, 422), tags=("standing",)),
    Route("POST", "/memory", memory.add_document, 201, DocumentStored, body=DocumentRequest,
          tags=("memory",), links=(("delete_document", "source", "source"),)),
    Route("POST", "/memory/search", memory.search_memory, 200, list[MatchView],
          body=SearchRequest, tags=("memory",)),
    Route("DELETE", "/memory/{source}", memory.delete_document, 200, DocumentDeleted,
          errors=(404,), tags=("memory",)),
)
