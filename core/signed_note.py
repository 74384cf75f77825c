"""C2SP signed notes with Ed25519 keys, and C2SP transparency-log checkpoints.

A tenant's audit log publishes its Merkle root as a checkpoint
(https://c2sp.org/tlog-checkpoint): a short text naming the log, its size and its
root, signed as a note (https://c2sp.org/signed-note). The wire format is that of
Go's ``golang.org/x/mod/sumdb/note``, so existing transparency-log tools and
witnesses can check Tenantry's checkpoints, and parsing follows that package's
rules so that both sides accept and refuse the same notes.

Keys travel as text: a signer key ``PRIVATE+KEY+<name>+<hash>+<base64>`` is a
secret kept in settings; a verifier key ``<name>+<hash>+<base64>`` is what an
auditor pins.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from core.merkle import HASH_SIZE

_ALGORITHM_ED25519 = 0x01
_KEY_SIZE = 32
_MAX_SIGNATURES = 100
_MAX_TREE_SIZE = 2**64 - 1
_SIGNATURE_PREFIX = "\u2014 "
_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_CONTROL_CHARACTER = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_HASH = re.compile(r"[0-9a-fA-F]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
# Standard, padded base64 with padding only at the very end, as Go's
# base64.StdEncoding demands; Python's decoder tolerates surplus padding.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class NoteError(ValueError):
    """A note, key or checkpoint is malformed, or a note's signatures do not hold.

    One type for every failure, because whatever the cause the text must not be
    trusted; the message says which check failed.
    """


@dataclass(frozen=True, slots=True)
class Verifier:
    """An Ed25519 public key and the name (conventionally the log's origin) it signs under.

    ``key_hash`` (the C2SP key ID) is derived from both: it finds the key for a
    signature line without trying them all, and it covers the name, so one key
    under two names has two hashes.
    """

    name: str
    public_key: bytes = field(repr=False)
    key_hash: int = field(init=False)

    def __post_init__(self) -> None:
        _require_key_size(self.public_key)
        material = _require_name(self.name) + b"\n" + bytes([_ALGORITHM_ED25519]) + self.public_key
        object.__setattr__(self, "key_hash", int.from_bytes(sha256(material).digest()[:4], "big"))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Report whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Signer:
    """An Ed25519 private key and the name it signs under.

    ``seed`` is secret, so it is kept out of ``repr``; ``verifier`` is the public
    half, for whoever checks the notes.
    """

    name: str
    seed: bytes = field(repr=False)
    verifier: Verifier = field(init=False)

    def __post_init__(self) -> None:
        _require_key_size(self.seed)
        public_key = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        object.__setattr__(self, "verifier", Verifier(self.name, public_key.public_bytes_raw()))

    def sign(self, message: bytes) -> bytes:
        """Return the Ed25519 signature of ``message`` (deterministic, per RFC 8032)."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The signed state of a log: which log, how many leaves, and their root.

    ``extensions`` are optional further lines, kept opaque.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def generate_key(name: str) -> tuple[str, str]:
    """Create a fresh ``(signer_key, verifier_key)`` pair for ``name``.

    Encoded, as Go's ``note.GenerateKey`` returns them, because they go straight
    to settings (the signer key) and to auditors (the verifier key).

    Raises:
        NoteError: The name is not a valid key name.
    """
    signer = Signer(name, Ed25519PrivateKey.generate().private_bytes_raw())
    return format_signer_key(signer), format_verifier_key(signer.verifier)


def format_signer_key(signer: Signer) -> str:
    """Encode a signer as ``PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>``."""
    return _PRIVATE_KEY_PREFIX + _format_key(signer.name, signer.verifier.key_hash, signer.seed)


def format_verifier_key(verifier: Verifier) -> str:
    """Encode a verifier as ``<name>+<hash>+<base64(0x01 || public key)>``."""
    return _format_key(verifier.name, verifier.key_hash, verifier.public_key)


def parse_signer_key(signer_key: str) -> Signer:
    """Decode a signer key, checking its hash against the key it derives.

    Raises:
        NoteError: The key is malformed, not Ed25519, or its hash is wrong.
    """
    if not signer_key.startswith(_PRIVATE_KEY_PREFIX):
        raise NoteError(f"signer key must start with {_PRIVATE_KEY_PREFIX!r}")
    name, claimed_hash, seed = _parse_key(signer_key.removeprefix(_PRIVATE_KEY_PREFIX))
    signer = Signer(name, seed)
    _require_key_hash(signer.verifier.key_hash, claimed_hash)
    return signer


def parse_verifier_key(verifier_key: str) -> Verifier:
    """Decode a verifier key, checking its hash against its name and key.

    Raises:
        NoteError: The key is malformed, not Ed25519, or its hash is wrong.
    """
    name, claimed_hash, public_key = _parse_key(verifier_key)
    verifier = Verifier(name, public_key)
    _require_key_hash(verifier.key_hash, claimed_hash)
    return verifier


def sign_note(text: str, signer: Signer) -> str:
    """Return ``text`` signed by ``signer`` as a C2SP signed note.

    Raises:
        NoteError: The text is empty, does not end with a newline, or holds
            characters a note may not contain.
    """
    message = _encode_note_text(text, "note text")
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    signature = signer.verifier.key_hash.to_bytes(4, "big") + signer.sign(message)
    encoded = base64.b64encode(signature).decode("ascii")
    return f"{text}\n{_SIGNATURE_PREFIX}{signer.name} {encoded}\n"


def verify_note(note: str, verifiers: Iterable[Verifier]) -> str:
    """Return the text of ``note`` once a signature by a known key has verified.

    As the C2SP spec requires, signatures by unknown keys are ignored, a bad
    signature by a known key rejects the whole note, and a note with no
    signature by a known key is rejected. A repeated signature by the same
    key is ignored, as Go's ``note.Open`` does.

    Raises:
        NoteError: The note is malformed, a known key's signature is invalid,
            or no known key signed it.
    """
    _encode_note_text(note, "note")
    text, separator, signature_block = note.rpartition("\n\n")
    if not separator or not signature_block.endswith("\n"):
        raise NoteError("malformed note: want text, a blank line, then signature lines")
    text += "\n"
    lines = signature_block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {_MAX_SIGNATURES}")

    # A set per (name, key hash): the same key listed twice is not ambiguous.
    known: dict[tuple[str, int], set[Verifier]] = {}
    for verifier in verifiers:
        known.setdefault((verifier.name, verifier.key_hash), set()).add(verifier)
    message = text.encode("utf-8")
    verified: set[tuple[str, int]] = set()
    for line in lines:
        name, key_hash, signature = _parse_signature_line(line)
        candidates = known.get((name, key_hash), set())
        if len(candidates) > 1:
            raise NoteError(f"ambiguous key {name}+{key_hash:08x}: several verifiers match")
        if not candidates or (name, key_hash) in verified:
            continue
        [verifier] = candidates
        if not verifier.verify(message, signature):
            raise NoteError(f"invalid signature for key {name}+{key_hash:08x}")
        verified.add((name, key_hash))
    if not verified:
        raise NoteError("note has no signature by a known key")
    return text


def format_checkpoint(origin: str, size: int, root: bytes) -> str:
    """Return the C2SP checkpoint text (the note body) for a tree.

    Raises:
        NoteError: A field cannot be represented in a checkpoint.
    """
    if not origin or "\n" in origin:
        raise NoteError(f"origin must be one non-empty line, got {origin!r}")
    _encode_note_text(origin, "origin")
    if isinstance(size, bool) or not 0 <= size <= _MAX_TREE_SIZE:
        raise NoteError(f"tree size must be an integer in 0..2**64-1, got {size!r}")
    _require_root_size(root)
    root_line = base64.b64encode(root).decode("ascii")
    return f"{origin}\n{size}\n{root_line}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a C2SP checkpoint text, as returned by ``verify_note``.

    Parsing is strict (no leading zeros in the size, exactly 32 root bytes)
    so that one tree state has exactly one text, and so one signature.

    Raises:
        NoteError: The text is not a well-formed checkpoint.
    """
    _encode_note_text(text, "checkpoint")
    if not text.endswith("\n"):
        raise NoteError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint needs an origin, a tree size and a root hash line")
    origin, size_line, root_line, *extensions = lines
    if not origin:
        raise NoteError("checkpoint origin is empty")
    if not _TREE_SIZE.fullmatch(size_line) or int(size_line) > _MAX_TREE_SIZE:
        raise NoteError(f"checkpoint tree size is not a canonical uint64: {size_line!r}")
    root = _decode_base64(root_line, "checkpoint root hash")
    _require_root_size(root)
    if not all(extensions):
        raise NoteError("checkpoint extension lines must not be empty")
    return Checkpoint(origin, int(size_line), root, tuple(extensions))


def _format_key(name: str, key_hash: int, key: bytes) -> str:
    encoded = base64.b64encode(bytes([_ALGORITHM_ED25519]) + key).decode("ascii")
    return f"{name}+{key_hash:08x}+{encoded}"


def _parse_key(encoded: str) -> tuple[str, int, bytes]:
    """Split ``<name>+<hash>+<base64>`` into the name, the claimed hash and the raw key."""
    name, _, rest = encoded.partition("+")
    hash_hex, _, key_base64 = rest.partition("+")
    _require_name(name)
    if not _KEY_HASH.fullmatch(hash_hex):
        raise NoteError(f"malformed key: hash must be 8 hex digits, got {hash_hex!r}")
    key = _decode_base64(key_base64, "key")
    if not key:
        raise NoteError("malformed key: no key data")
    if key[0] != _ALGORITHM_ED25519:
        raise NoteError(f"unknown key algorithm {key[0]:#04x}: only Ed25519 (0x01) is supported")
    return name, int(hash_hex, 16), key[1:]


def _require_key_hash(actual: int, claimed: int) -> None:
    if actual != claimed:
        raise NoteError(f"key hash {claimed:08x} does not match the key ({actual:08x})")


def _require_key_size(key: bytes) -> None:
    if len(key) != _KEY_SIZE:
        raise NoteError(f"Ed25519 key has {len(key)} bytes, want {_KEY_SIZE}")


def _require_root_size(root: bytes) -> None:
    if len(root) != HASH_SIZE:
        raise NoteError(f"root hash has {len(root)} bytes, want {HASH_SIZE}")


def _require_name(name: str) -> bytes:
    """Check a key name as Go's ``isValidName`` does, returning it encoded."""
    if not name or "+" in name or any(character.isspace() for character in name):
        raise NoteError(f"invalid key name {name!r}: want non-empty, no spaces, no '+'")
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError as error:
        raise NoteError(f"invalid key name {name!r}: not valid UTF-8") from error


def _encode_note_text(text: str, what: str) -> bytes:
    """Return ``text`` as UTF-8 after the checks C2SP puts on every note."""
    if _CONTROL_CHARACTER.search(text):
        raise NoteError(f"{what} contains an ASCII control character other than newline")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise NoteError(f"{what} is not valid UTF-8") from error


def _decode_base64(value: str, what: str) -> bytes:
    if not _BASE64.fullmatch(value):
        raise NoteError(f"{what} is not valid padded base64")
    return base64.b64decode(value)


def _parse_signature_line(line: str) -> tuple[str, int, bytes]:
    """Split ``— <name> <base64(key hash || signature)>`` into its parts."""
    if not line.startswith(_SIGNATURE_PREFIX):
        raise NoteError(f"malformed signature line {line!r}: want an em dash and a space first")
    name, _, encoded = line.removeprefix(_SIGNATURE_PREFIX).partition(" ")
    _require_name(name)
    raw = _decode_base64(encoded, "signature")
    if len(raw) < 5:
        raise NoteError(f"malformed signature line {line!r}: signature too short")
    return name, int.from_bytes(raw[:4], "big"), raw[4:]
