"""What a job on the queue carries: a claim of ids, and an HMAC over it.

A job names its kind, its tenant and the ids of what it acts on (a run, a digest and
its fire time), nothing else: no prompt, no token, no secret. The claim is encoded
one way only (sorted keys, no spaces, UTF-8 JSON) and signed with HMAC-SHA256 under
the deployment's ``TENANTRY_JOB_KEY``, so a worker can tell a job a Tenantry process
queued from one written into the jobs table by anyone else, or altered there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from core.errors import ConfigurationError

MAC = "mac"
"""The payload's field that holds the claim's HMAC (hex)."""

MAX_ID = 200
"""Longest id a claim may carry: anything longer is content, not an id."""


class ClaimRefused(Exception):
    """A job whose claim a worker does not accept; ``reason`` is a short word for the audit."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claim:
    """What a job claims to be: its kind, its tenant, and the ids it acts on."""

    kind: str
    tenant_id: str
    ids: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, kind: str, tenant_id: str, ids: Mapping[str, str]) -> Claim:
        """A claim with its ids in canonical order.

        Raises:
            ValueError: an id is not a short string, or is named like a claim field.
        """
        for name, value in ids.items():
            if name in ("kind", "tenant_id", MAC):
                raise ValueError(f"{name!r} cannot name an id of a job")
            if not isinstance(value, str) or not value or len(value) > MAX_ID:
                raise ValueError(f"job id {name!r} must be a string of 1 to {MAX_ID} "
                                 "characters")
        return cls(kind, tenant_id, tuple(sorted(ids.items())))

    def id(self, name: str) -> str:
        """The id called ``name``.

        Raises:
            ClaimRefused: the claim carries no such id.
        """
        for key, value in self.ids:
            if key == name:
                return value
        raise ClaimRefused("malformed", f"no {name}")

    def fields(self) -> dict[str, str]:
        """The claim as the job's payload holds it."""
        return {"kind": self.kind, "tenant_id": self.tenant_id, **dict(self.ids)}

    def canonical(self) -> bytes:
        """The one encoding the HMAC is computed over."""
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()

    def digest(self) -> str:
        """A short unkeyed digest of the claim: the job's queueing lock and its fair slot."""
        return hashlib.sha256(self.canonical()).hexdigest()[:32]


class ClaimSigner:
    """Signs claims into payloads and verifies payloads back into claims."""

    def __init__(self, key: SecretStr | None) -> None:
        if key is None or not key.get_secret_value():
            raise ConfigurationError(
                "runs on the queue need TENANTRY_JOB_KEY: one secret shared by every web, "
                "worker and clock process of the deployment")
        self._key = key.get_secret_value().encode()

    def mac(self, claim: Claim) -> str:
        """The claim's HMAC-SHA256, hex."""
        return hmac.new(self._key, claim.canonical(), hashlib.sha256).hexdigest()

    def payload(self, claim: Claim) -> dict[str, str]:
        """The job's arguments: the claim's fields and their HMAC."""
        return claim.fields() | {MAC: self.mac(claim)}

    def verify(self, payload: Mapping[str, Any]) -> Claim:
        """The claim of a job's payload, once its HMAC matches.

        Raises:
            ClaimRefused: ``malformed`` (not a claim) or ``bad_signature`` (forged,
                altered, or signed with another key).
        """
        fields = dict(payload)
        mac = fields.pop(MAC, None)
        kind, tenant_id = fields.pop("kind", None), fields.pop("tenant_id", None)
        if not (isinstance(mac, str) and isinstance(kind, str) and isinstance(tenant_id, str)):
            raise ClaimRefused("malformed", "kind, tenant_id and mac are required")
        try:
            claim = Claim.of(kind, tenant_id, fields)
        except ValueError as exc:
            raise ClaimRefused("malformed", str(exc)) from None
        if not hmac.compare_digest(mac, self.mac(claim)):
            raise ClaimRefused("bad_signature")
        return claim
