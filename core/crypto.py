"""Secrets at rest: Fernet encryption under a keyring whose newest key encrypts.

Keys come from ``TENANTRY_ENCRYPTION_KEYS`` (comma-separated, newest first) or, in the
embedded default, from ``<data_dir>/encryption.keys`` (one key a line, newest first),
which is created with one generated key on first start. Older keys only decrypt, so a
key is rotated by prepending a new one and re-encrypting every stored secret.

A file-backed keyring re-reads its file when the file changes (checked before each
encryption and after a failed decryption), so ``tenantry keys rotate`` in one process
does not leave a running server unable to read what the rotation re-encrypted.

The key-file functions below also keep the audit signing keys (``core.audit.keys``).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.errors import ConfigurationError
from core.settings import Settings

KEY_FILE = "encryption.keys"
_UNREADABLE = (
    "a stored secret cannot be decrypted with any configured encryption key: the key "
    "that encrypted it was removed or the stored value is corrupt; restore the key or "
    "set the secret again"
)
_FILE_HEADER = "# Tenantry encryption keys (Fernet), newest first. Keep this file secret.\n"


class CryptoError(ConfigurationError):
    """A stored secret cannot be decrypted with any configured key.

    A ``ConfigurationError`` rather than ``InvalidInput``: ciphertext is never handed
    in by a user, it comes from Tenantry's own database, so a token that does not
    decrypt means the deployment lost the key that wrote it (or the row is corrupt).
    No request can fix that; an operator must restore the key or set the secret again.
    """


def generate_key() -> str:
    """A fresh Fernet key, as the text that goes in the key file or the setting."""
    return Fernet.generate_key().decode("ascii")


def key_lines(text: str) -> list[str]:
    """The keys in a key file: its lines that are neither blank nor comments."""
    return [
        line.strip() for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def check_private(path: Path, mode: int) -> None:
    """Refuse a key file (of ``st_mode`` ``mode``) that group or others may access."""
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}` and, if others may "
            "have read it, replace the key"
        )


def write_key_file(path: Path, header: str, keys: Sequence[str], *, replace: bool) -> None:
    """Write ``keys`` to a 0600 temp file, then move it into place in one step.

    Without ``replace`` a missing file is created, with its folder: it is published
    with ``os.link``, which fails if another process created the file first, so two
    servers starting together share one key instead of each using a key the other
    never sees.
    """
    if not replace:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(header + "".join(f"{key}\n" for key in keys))
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class Keyring:
    """Encrypts with the newest key, decrypts with any; never shows its keys.

    ``repr`` and ``str`` name only the number of keys and where they come from, and a
    keyring refuses to be pickled, so its keys cannot leak into a log line, a
    traceback or a job payload by accident.

    Args:
        keys: Fernet keys, newest first, when they are held in memory.
        source: Where the keys come from, for messages.
        path: A key file to read (and re-read when it changes) instead of ``keys``.
    """

    __slots__ = ("_fernet", "_keys", "_stamp", "path", "source")

    def __init__(
        self, keys: Sequence[str] = (), *, source: str = "the given keys", path: Path | None = None
    ) -> None:
        self.source = source
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: tuple[str, ...] = ()
        self._fernet: MultiFernet | None = None
        if path is None:
            self._install(keys)
        else:
            self._reload()

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The deployment's keyring: the setting if given, else the embedded key file.

        Raises:
            ConfigurationError: a key is malformed, or the key file is accessible by
                group or others.
        """
        if settings.encryption_keys is not None:
            keys = [k.strip() for k in settings.encryption_keys.get_secret_value().split(",")]
            return cls([k for k in keys if k], source="TENANTRY_ENCRYPTION_KEYS")
        return cls.from_file(Path(settings.data_dir) / KEY_FILE)

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """The keyring in ``path``, created (mode 0600) with one new key if missing."""
        if not path.exists():
            write_key_file(path, _FILE_HEADER, [generate_key()], replace=False)
        return cls(source=str(path), path=path)

    def __repr__(self) -> str:
        return f"Keyring({len(self._keys)} keys from {self.source})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Keyring cannot be pickled: that would copy its keys")

    @property
    def key_count(self) -> int:
        """How many keys the keyring holds (the newest encrypts, all decrypt)."""
        return len(self._keys)

    def _install(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigurationError(f"no encryption key in {self.source}")
        fernets = []
        for index, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise ConfigurationError(
                    f"encryption key #{index} in {self.source} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes; `tenantry keys generate` makes one)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._keys = tuple(keys)

    def _reload(self) -> bool:
        """Re-read the key file if it changed (content or mode) since it was read."""
        if self.path is None:
            return False
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise ConfigurationError(f"encryption key file {self.path} is missing") from None
        stamp = (info.st_mtime_ns, info.st_size, info.st_mode)
        if stamp == self._stamp:
            return False
        check_private(self.path, info.st_mode)
        try:
            text = self.path.read_text(encoding="ascii")
        except UnicodeDecodeError:
            raise ConfigurationError(f"encryption key file {self.path} is not ASCII") from None
        self._install(key_lines(text))
        self._stamp = stamp
        return True

    def _attempt(self, operation: Callable[[MultiFernet], bytes]) -> bytes:
        for retry in (False, True):
            if retry and not self._reload():
                break
            assert self._fernet is not None
            try:
                return operation(self._fernet)
            except InvalidToken:
                continue
        raise CryptoError(_UNREADABLE)

    def encrypt(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` under the newest key; the token is ASCII text."""
        self._reload()
        assert self._fernet is not None
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of ``token``, decrypted with whichever key wrote it.

        Raises:
            CryptoError: no configured key decrypts it (key removed, foreign, corrupt).
        """
        try:
            return self._attempt(lambda f: f.decrypt(token.encode("ascii"))).decode("utf-8")
        except UnicodeError:
            raise CryptoError(_UNREADABLE) from None

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the newest key.

        Raises:
            CryptoError: no configured key decrypts it.
        """
        self._reload()
        try:
            return self._attempt(lambda f: f.rotate(token.encode("ascii"))).decode("ascii")
        except UnicodeError:
            raise CryptoError(_UNREADABLE) from None

    def add_key(self) -> None:
        """Prepend a new key to the key file; it encrypts from now on.

        Raises:
            ConfigurationError: the keys come from ``TENANTRY_ENCRYPTION_KEYS``, which
                only the operator can change.
        """
        if self.path is None:
            raise ConfigurationError(
                f"keys come from {self.source}; prepend a new key there "
                "(`tenantry keys generate`) on every process, restart them, then rotate"
            )
        self._reload()
        write_key_file(self.path, _FILE_HEADER, [generate_key(), *self._keys], replace=True)
        self._reload()
