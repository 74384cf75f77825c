"""The deployment's checkpoint signing key: from settings, or a private file made once.

Whoever holds this key can sign any tree head, so the embedded default keeps it in a
file only the service user can read, and refuses to start when anyone else could:
a key that may have been copied proves nothing.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from core.errors import ConfigurationError
from core.settings import Settings
from core.signed_note import NoteError, Signer, generate_key, parse_signer_key

KEY_FILE = "audit-signing.key"
KEY_NAME = "tenantry-audit"
_HEADER = "# Tenantry audit checkpoint signing key (Ed25519 signed-note). Keep it secret.\n"


def load_signer(settings: Settings) -> Signer:
    """The signer of audit checkpoints.

    ``settings.audit_signing_key`` wins; otherwise ``<data_dir>/audit-signing.key``
    is read, or created with a new key (mode 0600) on first start. Two processes
    starting together end up with the same key: the file is published with a
    link that fails if the other one won.

    Raises:
        ConfigurationError: The key is malformed, or the key file is accessible by
            group or others.
    """
    if settings.audit_signing_key is not None:
        return _parse(settings.audit_signing_key.get_secret_value(), "TENANTRY_AUDIT_SIGNING_KEY")
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _publish(path, generate_key(KEY_NAME)[0])
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"audit signing key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}` and, if others may "
            "have read it, replace the key"
        )
    lines = [
        line.strip() for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(lines) != 1:
        raise ConfigurationError(f"audit signing key file {path} must hold exactly one key")
    return _parse(lines[0], str(path))


def _parse(text: str, source: str) -> Signer:
    try:
        return parse_signer_key(text.strip())
    except NoteError as error:
        raise ConfigurationError(f"audit signing key in {source} is invalid: {error}") from None


def _publish(path: Path, signer_key: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".audit-key-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(_HEADER + signer_key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
