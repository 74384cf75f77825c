"""Tests for core.signed_note: the Go sumdb/note vector, key handling, checkpoints."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.merkle import EMPTY_ROOT
from core.signed_note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    format_checkpoint,
    format_signer_key,
    format_verifier_key,
    generate_key,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    verify_note,
)

# The example of golang.org/x/mod/sumdb/note, as listed in shared/NOTICE.md; kept
# inline because a signer must reproduce it whether or not ../shared is present.
SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
SIGNATURE_LINE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
    "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
NOTE = TEXT + "\n" + SIGNATURE_LINE

ROOT = sha256(b"a root").digest()
NOT_BASE64 = "!!!!"


def _signature_line(signer: Signer, text: str) -> str:
    """Sign ``text`` by hand, to build notes with several signatures."""
    raw = signer.verifier.key_hash.to_bytes(4, "big") + signer.sign(text.encode())
    return f"\u2014 {signer.name} {base64.b64encode(raw).decode()}\n"


def _new_signer(name: str) -> Signer:
    return parse_signer_key(generate_key(name)[0])


def _tolerate_note_error(call: Callable[[], object]) -> None:
    with contextlib.suppress(NoteError):
        call()


def test_reference_note_is_reproduced_byte_for_byte() -> None:
    assert sign_note(TEXT, parse_signer_key(SIGNER_KEY)) == NOTE


def test_reference_note_verifies() -> None:
    assert verify_note(NOTE, [parse_verifier_key(VERIFIER_KEY)]) == TEXT


def test_reference_keys_round_trip() -> None:
    signer = parse_signer_key(SIGNER_KEY)
    assert format_signer_key(signer) == SIGNER_KEY
    assert format_verifier_key(signer.verifier) == VERIFIER_KEY
    assert parse_verifier_key(VERIFIER_KEY) == signer.verifier


def test_key_hash_covers_name_and_key() -> None:
    verifier = parse_verifier_key(VERIFIER_KEY)
    assert verifier.key_hash == 0xC74F20A3
    assert Verifier("PeterNeumann", verifier.public_key).key_hash == 0xC74F20A3
    assert Verifier("EnochRoot", verifier.public_key).key_hash != 0xC74F20A3


def test_signer_repr_hides_the_seed() -> None:
    signer = parse_signer_key(SIGNER_KEY)
    assert signer.seed.hex() not in repr(signer)
    assert "seed" not in repr(signer)


def test_modified_text_fails() -> None:
    tampered = NOTE.replace("cryptography", "cryptographY")
    with pytest.raises(NoteError, match=r"invalid signature for key PeterNeumann\+c74f20a3"):
        verify_note(tampered, [parse_verifier_key(VERIFIER_KEY)])


def test_modified_signature_fails() -> None:
    tampered = NOTE.replace("ZInNIuGUgYN1", "ZInNIuGUgYN2")
    with pytest.raises(NoteError, match="invalid signature"):
        verify_note(tampered, [parse_verifier_key(VERIFIER_KEY)])


def test_signature_under_another_key_hash_is_not_trusted() -> None:
    tampered = NOTE.replace("x08go", "x18go")
    with pytest.raises(NoteError, match="no signature by a known key"):
        verify_note(tampered, [parse_verifier_key(VERIFIER_KEY)])


def test_note_without_known_key_fails() -> None:
    with pytest.raises(NoteError, match="no signature by a known key"):
        verify_note(NOTE, [])
    with pytest.raises(NoteError, match="no signature by a known key"):
        verify_note(NOTE, [_new_signer("PeterNeumann").verifier])


def test_unknown_signatures_are_ignored() -> None:
    stranger = _new_signer("witness.example/stranger")
    note = NOTE + _signature_line(stranger, TEXT)
    assert verify_note(note, [parse_verifier_key(VERIFIER_KEY)]) == TEXT


def test_every_known_signature_must_hold() -> None:
    witness = _new_signer("witness.example/w1")
    wrong = _signature_line(witness, "another text\n")
    with pytest.raises(NoteError, match=r"invalid signature for key witness\.example/w1"):
        verify_note(NOTE + wrong, [parse_verifier_key(VERIFIER_KEY), witness.verifier])


def test_cosigned_note_verifies_with_either_key() -> None:
    witness = _new_signer("witness.example/w1")
    note = NOTE + _signature_line(witness, TEXT)
    assert verify_note(note, [witness.verifier]) == TEXT
    assert verify_note(note, [parse_verifier_key(VERIFIER_KEY), witness.verifier]) == TEXT


def test_repeated_signature_and_repeated_verifier_are_tolerated() -> None:
    verifier = parse_verifier_key(VERIFIER_KEY)
    assert verify_note(NOTE + SIGNATURE_LINE, [verifier, verifier]) == TEXT


def test_generated_keys_sign_and_verify() -> None:
    signer_key, verifier_key = generate_key("tenantry.example/audit/t1")
    signer, verifier = parse_signer_key(signer_key), parse_verifier_key(verifier_key)
    assert signer.verifier == verifier
    assert signer_key.startswith("PRIVATE+KEY+tenantry.example/audit/t1+")
    assert verify_note(sign_note("hello\n", signer), [verifier]) == "hello\n"


def test_text_with_blank_lines_verifies() -> None:
    signer = _new_signer("example.com/log")
    text = "first\n\nthird\n\n"
    assert verify_note(sign_note(text, signer), [signer.verifier]) == text


@pytest.mark.parametrize(
    "text",
    ["", "no final newline", "tab\there\n", "carriage\r\n", "lone \ud800 surrogate\n"],
)
def test_sign_refuses_text_a_note_cannot_carry(text: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, parse_signer_key(SIGNER_KEY))


@pytest.mark.parametrize(
    "note",
    [
        pytest.param("", id="empty"),
        pytest.param(TEXT, id="no signature block"),
        pytest.param(TEXT + "\n", id="empty signature block"),
        pytest.param(NOTE[:-1], id="no final newline"),
        pytest.param(TEXT + SIGNATURE_LINE, id="no blank line"),
        pytest.param(NOTE.replace("\u2014 ", "- "), id="hyphen for em dash"),
        pytest.param(NOTE.replace("\u2014 ", "\u2014"), id="no space after dash"),
        pytest.param(NOTE.replace("PeterNeumann ", "Peter+Neumann "), id="plus in name"),
        pytest.param(NOTE.replace("PeterNeumann x08", "PeterNeumann"), id="name only"),
        pytest.param(NOTE.replace("AM=\n", "AM\n"), id="unpadded base64"),
        pytest.param(NOTE.replace("x08go", "x08g!"), id="bad base64"),
        pytest.param(TEXT + "\n\u2014 PeterNeumann AAAAAA==\n", id="signature too short"),
        pytest.param(NOTE.replace("problem,", "problem,\x07"), id="control character"),
        pytest.param(NOTE.replace("problem,", "problem,\ud800"), id="lone surrogate"),
        pytest.param(NOTE + SIGNATURE_LINE * 100, id="too many signatures"),
        pytest.param(NOTE + "trailing junk\n", id="junk after signatures"),
    ],
)
def test_malformed_notes_raise_note_error(note: str) -> None:
    with pytest.raises(NoteError):
        verify_note(note, [parse_verifier_key(VERIFIER_KEY)])


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "invalid key name"),
        ("PeterNeumann", "hash must be 8 hex digits"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex"),
        ("PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann+c74f20a3+AhpQ2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "algorithm"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy", "32"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=", "base64"),
        ("PeterNeumann+c74f20a3+", "no key data"),
        (SIGNER_KEY, "8 hex"),
    ],
)
def test_malformed_verifier_keys_raise_note_error(key: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_verifier_key(key)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (VERIFIER_KEY, "must start with"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", "match"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", "alg"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXH", "32"),
        ("PRIVATE+KEY+Peter\u00a0Neumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx0", "name"),
    ],
)
def test_malformed_signer_keys_raise_note_error(key: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_signer_key(key)


def test_keys_cannot_be_built_inconsistent() -> None:
    with pytest.raises(NoteError, match="32"):
        Verifier("example.com/log", b"short")
    with pytest.raises(NoteError, match="32"):
        Signer("example.com/log", b"short")
    with pytest.raises(NoteError, match="key name"):
        Signer("bad name", bytes(32))


def test_checkpoint_text_follows_c2sp() -> None:
    text = format_checkpoint("example.com/log", 5, ROOT)
    assert text == f"example.com/log\n5\n{base64.b64encode(ROOT).decode()}\n"
    assert parse_checkpoint(text) == Checkpoint("example.com/log", 5, ROOT)


def test_checkpoint_extensions_are_parsed() -> None:
    text = format_checkpoint("example.com/log", 0, EMPTY_ROOT) + "ext one\next two\n"
    assert parse_checkpoint(text).extensions == ("ext one", "ext two")


def test_checkpoint_sign_and_verify_round_trip() -> None:
    signer = _new_signer("tenantry.example/audit/t1")
    body = format_checkpoint("tenantry.example/audit/t1", 2**64 - 1, ROOT)
    note = sign_note(body, signer)
    checkpoint = parse_checkpoint(verify_note(note, [signer.verifier]))
    assert checkpoint == Checkpoint("tenantry.example/audit/t1", 2**64 - 1, ROOT)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(f"o\n1\n{base64.b64encode(ROOT).decode()}", id="no final newline"),
        pytest.param("o\n1\n", id="no root line"),
        pytest.param(f"\n1\n{base64.b64encode(ROOT).decode()}\n", id="empty origin"),
        pytest.param(f"o\n01\n{base64.b64encode(ROOT).decode()}\n", id="leading zero"),
        pytest.param(f"o\n+1\n{base64.b64encode(ROOT).decode()}\n", id="plus sign"),
        pytest.param(f"o\n-1\n{base64.b64encode(ROOT).decode()}\n", id="negative"),
        pytest.param(f"o\n1_0\n{base64.b64encode(ROOT).decode()}\n", id="underscore"),
        pytest.param(f"o\n 1\n{base64.b64encode(ROOT).decode()}\n", id="space"),
        pytest.param(f"o\n\u0661\n{base64.b64encode(ROOT).decode()}\n", id="arabic digit"),
        pytest.param(f"o\n{2**64}\n{base64.b64encode(ROOT).decode()}\n", id="beyond uint64"),
        pytest.param(f"o\n1\n{NOT_BASE64}\n", id="bad base64"),
        pytest.param(f"o\n1\n{base64.b64encode(ROOT[:31]).decode()}\n", id="short root"),
        pytest.param(f"o\n1\n{base64.b64encode(ROOT).decode()}\n\n", id="empty extension"),
        pytest.param(f"o\x00\n1\n{base64.b64encode(ROOT).decode()}\n", id="control char"),
    ],
)
def test_malformed_checkpoints_raise_note_error(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [
        ("", 1, ROOT),
        ("two\nlines", 1, ROOT),
        ("tab\t", 1, ROOT),
        ("o", -1, ROOT),
        ("o", 2**64, ROOT),
        ("o", True, ROOT),
        ("o", 1, ROOT[:16]),
    ],
)
def test_format_checkpoint_refuses_unrepresentable_fields(
    origin: str, size: int, root: bytes
) -> None:
    with pytest.raises(NoteError):
        format_checkpoint(origin, size, root)


@settings(database=None, deadline=None, max_examples=300)
@given(st.text())
def test_arbitrary_text_only_ever_raises_note_error(text: str) -> None:
    verifiers = [parse_verifier_key(VERIFIER_KEY)]
    _tolerate_note_error(lambda: verify_note(text, verifiers))
    _tolerate_note_error(lambda: parse_checkpoint(text))
    _tolerate_note_error(lambda: parse_verifier_key(text))
    _tolerate_note_error(lambda: parse_signer_key(text))


@settings(database=None, deadline=None, max_examples=300)
@given(st.integers(min_value=0, max_value=len(NOTE)), st.integers(0, len(NOTE)), st.text())
def test_spliced_notes_only_ever_raise_note_error(start: int, end: int, insert: str) -> None:
    note = NOTE[:start] + insert + NOTE[max(start, end) :]
    try:
        text = verify_note(note, [parse_verifier_key(VERIFIER_KEY)])
    except NoteError:
        return
    assert text == TEXT
