"""The deployment's checkpoint signing keys: from settings, or a private file, rotatable.

Whoever holds a key can sign any tree head, so the embedded default keeps its keys in
a file only the service user can read, and refuses to start when anyone else could:
a key that may have been copied proves nothing.

Keys are listed newest first. The newest signs; older ones stay so that checkpoints
signed before a rotation still verify. A key's name in the file does not matter:
each tenant's checkpoints are signed under a name equal to its log's origin, as
C2SP tlog-checkpoint asks (``AuditLog.signer_for``).
"""

from __future__ import annotations

from pathlib import Path

from core.crypto import check_private, key_lines, write_key_file
from core.errors import ConfigurationError
from core.settings import Settings
from core.signed_note import NoteError, Signer, Verifier, generate_key, parse_signer_key

KEY_FILE = "audit-signing.key"
KEY_NAME = "tenantry-audit"
_HEADER = ("# Tenantry audit checkpoint signing keys (Ed25519 signed-note), newest first.\n"
           "# The first one signs; the others verify what they signed. Keep this file secret.\n")


def load_keys(settings: Settings) -> tuple[Signer, tuple[Verifier, ...]]:
    """The newest signing key, and the verifiers of the keys it replaced.

    ``settings.audit_signing_key`` (comma-separated, newest first) wins; otherwise
    ``<data_dir>/audit-signing.key`` is read, or created with one new key on first
    start (see ``core.crypto.write_key_file``).

    Raises:
        ConfigurationError: A key is malformed, or the key file is accessible by
            group or others.
    """
    if settings.audit_signing_key is not None:
        value = settings.audit_signing_key.get_secret_value()
        keys = [_parse(k, "TENANTRY_AUDIT_SIGNING_KEY") for k in value.split(",") if k.strip()]
    else:
        path = _key_file(settings)
        if not path.exists():
            write_key_file(path, _HEADER, [generate_key(KEY_NAME)[0]], replace=False)
        keys = [_parse(line, str(path)) for line in _read(path)]
    if not keys:
        raise ConfigurationError("no audit signing key configured")
    return keys[0], tuple(key.verifier for key in keys[1:])


def rotate_keys(settings: Settings) -> Signer:
    """Put a new newest key at the top of the key file; the older ones stay to verify.

    Raises:
        ConfigurationError: The keys come from ``TENANTRY_AUDIT_SIGNING_KEY``: a new
            one is prepended there, by whoever manages the deployment's secrets.
    """
    if settings.audit_signing_key is not None:
        raise ConfigurationError(
            "the audit signing keys come from TENANTRY_AUDIT_SIGNING_KEY: put a new key "
            "(`tenantry keys generate --audit`) first in it, keeping the old ones after it, "
            "and publish each tenant's verifier key (`tenantry audit keys show`)"
        )
    load_keys(settings)  # creates the file, or refuses one others can read
    path = _key_file(settings)
    new_key = generate_key(KEY_NAME)[0]
    write_key_file(path, _HEADER, [new_key, *_read(path)], replace=True)
    return parse_signer_key(new_key)


def _key_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / KEY_FILE


def _read(path: Path) -> list[str]:
    check_private(path, path.stat().st_mode)
    return key_lines(path.read_text(encoding="utf-8"))


def _parse(text: str, source: str) -> Signer:
    try:
        return parse_signer_key(text.strip())
    except NoteError as error:
        raise ConfigurationError(f"audit signing key in {source} is invalid: {error}") from None
