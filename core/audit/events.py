"""What an audit event is, and the one byte encoding its Merkle leaf is hashed from.

The leaf of event ``seq`` is ``leaf_hash(canonical_bytes(...))``: a deterministic JSON
encoding (sorted keys, no spaces, UTF-8) of the tenant, the sequence number, the run,
the event type, the time and the fields. Anyone can recompute it from an exported
event with any JSON library, so the encoding is part of the log's public format and
must never change for existing events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.errors import TenantryError

RUN_STARTED = "run.started"
TOOL_INVOKED = "tool.invoked"
TOOL_REFUSED = "tool.refused"
TOOL_UNCONFIRMED = "tool.unconfirmed"
RUN_COMPLETED = "run.completed"
RUN_HALTED = "run.halted"
RUN_REFUSED = "run.refused"
RUN_RESUME_REQUESTED = "run.resume_requested"
MEMORY_DELETED = "memory.deleted"
DOCUMENT_INGESTED = "document.ingested"
TENANT_PURGED = "tenant.purged"
RETENTION_SWEPT = "retention.swept"
TENANT_CREATED = "tenant.created"
TENANT_SUSPENDED = "tenant.suspended"
TENANT_RESUMED = "tenant.resumed"
PLAN_CHANGED = "plan.changed"
ROLE_GRANTED = "role.granted"
ROLE_REVOKED = "role.revoked"
CREDENTIAL_SET = "credential.set"
CREDENTIAL_REMOVED = "credential.removed"
WORKSPACE_LINKED = "workspace.linked"
WORKSPACE_UNLINKED = "workspace.unlinked"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"
API_KEY_REFUSED = "api_key.refused"
DIGEST_ADDED = "digest.added"
DIGEST_PAUSED = "digest.paused"
DIGEST_RESUMED = "digest.resumed"
DIGEST_REMOVED = "digest.removed"
DIGEST_SKIPPED = "digest.skipped"
DIGEST_FIRED = "digest.fired"
JOB_REFUSED = "job.refused"

MAX_FIELD_STRING = 256
"""Longest string a field may hold: anything longer is tenant content, not metadata."""

_encode_string = json.JSONEncoder(ensure_ascii=False).encode


class AuditError(TenantryError):
    """The audit log refused an event, or found itself inconsistent.

    Raised for fields that would put raw content or non-JSON values in the log, and
    for a head that no longer matches the stored events (``AuditLog.verify`` then
    explains in detail).
    """


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event of a tenant's log, as stored and as exported.

    ``seq`` counts from 1 without gaps; ``run_id`` is ``None`` for tenant-level events;
    ``time`` is ISO-8601 UTC with microseconds; ``fields`` hold redacted arguments,
    digests and outcome metadata; ``leaf_hash`` is the stored hex leaf hash (what the
    row claims, not proof).
    """

    tenant_id: str
    seq: int
    run_id: str | None
    event: str
    time: str
    fields: Mapping[str, Any]
    leaf_hash: str


def utc_now() -> str:
    """The current time as the log writes it: fixed width, so text order is time order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Mapping[str, Any]) -> str:
    """Encode ``fields`` the one way the log stores and hashes them.

    Raises:
        AuditError: A value is not JSON (NaN, bytes, objects), or a key is not a string.
    """
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise AuditError(f"audit fields must be plain JSON: {error}") from None


def canonical_bytes(
    tenant_id: str, seq: int, run_id: str | None, event: str, time: str, fields_json: str
) -> bytes:
    """The bytes the leaf of one event is hashed from.

    Equal to ``canonical_json`` of the whole event when ``fields_json`` is itself
    canonical (which the writer guarantees), but assembled from the stored fields
    text directly so that verifying a million events does not re-encode them all.
    Every other value is JSON-escaped, so no stored text can shift a boundary
    between the parts and make two different events encode alike.
    """
    run = "null" if run_id is None else _encode_string(run_id)
    text = (
        f'{{"event":{_encode_string(event)},"fields":{fields_json},"run_id":{run},'
        f'"seq":{seq},"tenant_id":{_encode_string(tenant_id)},"time":{_encode_string(time)}}}'
    )
    return text.encode("utf-8")


def check_fields(fields: Mapping[str, Any]) -> str:
    """Return the canonical JSON of ``fields`` after refusing what must not be logged.

    A long string in an event is almost always raw tenant content (a prompt, a tool
    result) that should have gone through ``AuditLog.digest``; refusing it turns
    that mistake into a failing test instead of a leak.

    Raises:
        AuditError: A string is longer than ``MAX_FIELD_STRING``, or a value is not JSON.
    """
    _refuse_long_strings(fields, "fields")
    return canonical_json(fields)


def _refuse_long_strings(value: Any, path: str) -> None:
    if isinstance(value, str):
        if len(value) > MAX_FIELD_STRING:
            raise AuditError(
                f"{path} holds a {len(value)}-character string; put tenant content in the "
                "audit log only as a digest (digest_with, arguments_fields)"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_long_strings(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_long_strings(item, f"{path}[{index}]")
