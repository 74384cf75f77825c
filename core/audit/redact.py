"""Redaction of tool arguments before they reach the audit log.

An audit log is kept for years and read by people who must not see a tenant's
secrets or content, so arguments are reduced to their shape: values under keys that
look secret become ``"[redacted]"``, values that look like well-known credentials
too, and long strings (content, not parameters) become a length marker. A
deployment with stricter rules passes its own ``Redactor`` to ``AuditLog``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

REDACTED = "[redacted]"
MAX_STRING = 64

_SECRET_KEY_PARTS = (
    "token", "secret", "passw", "passphrase", "apikey", "authoriz", "credential",
    "cookie", "privatekey", "accesskey", "signingkey", "bearer", "sessionid",
)
_SECRET_KEY_WORDS = frozenset(
    {"key", "auth", "pwd", "pass", "pin", "otp", "sig", "signature", "session"}
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CREDENTIAL_VALUE = re.compile(
    r"^(?:xox[a-z]-|xapp-|sk-|sk_live_|rk_live_|ghp_|gho_|ghs_|github_pat_|glpat-|AKIA|ASIA"
    r"|AIza|eyJ[A-Za-z0-9_-]{8,}\.|-----BEGIN)|^(?:bearer|basic|token)\s",
    re.IGNORECASE,
)
_MAX_DEPTH = 8


class Redactor(Protocol):
    """Turns a tool call's arguments into what the audit log may keep."""

    def __call__(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Return a JSON-ready copy of ``arguments`` without secrets or content."""
        ...


def is_secret_key(key: str) -> bool:
    """Whether a key name suggests its value is a credential.

    Errs on the side of redacting (``max_tokens`` loses its value too): a lost
    number in an audit record is cheap, a leaked token is not.
    """
    words = _WORD_SPLIT.split(_CAMEL_BOUNDARY.sub("_", key).lower())
    joined = "".join(words)
    return any(part in joined for part in _SECRET_KEY_PARTS) or any(
        word in _SECRET_KEY_WORDS for word in words
    )


def default_redactor(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Redact secret-looking keys and values, and shorten long strings to their length.

    Nested mappings and sequences are walked (to a bounded depth); values that
    are not JSON scalars are replaced by their type name, since their ``repr``
    could hold anything.
    """
    return {str(key): _redact_item(str(key), value, 1) for key, value in arguments.items()}


def _redact_item(key: str, value: Any, depth: int) -> Any:
    if is_secret_key(key):
        return REDACTED
    return _redact_value(value, depth)


def _redact_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, str):
        if _CREDENTIAL_VALUE.match(value):
            return REDACTED
        return value if len(value) <= MAX_STRING else f"[{len(value)} chars]"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes]"
    if depth >= _MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, Mapping):
        return {str(k): _redact_item(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item, depth + 1) for item in value]
    return f"[{type(value).__name__}]"
