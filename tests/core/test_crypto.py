from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from core.crypto import KEY_FILE, CryptoError, Keyring, generate_key
from core.errors import ConfigurationError
from core.settings import Settings


def file_keys(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def embedded(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def test_a_secret_round_trips_and_the_token_does_not_contain_it() -> None:
    keyring = Keyring([generate_key()])
    token = keyring.encrypt("sk-live-çà-secret")
    assert "sk-live" not in token
    assert token.isascii()
    assert keyring.decrypt(token) == "sk-live-çà-secret"


def test_key_material_never_shows_in_repr_str_or_pickle() -> None:
    key = generate_key()
    keyring = Keyring([key, generate_key()])
    assert key not in repr(keyring) and key not in str(keyring)
    assert repr(keyring) == "Keyring(2 keys from the given keys)"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(keyring)


@pytest.mark.parametrize(
    "token",
    [
        Fernet(Fernet.generate_key()).encrypt(b"someone else's").decode(),
        "gAAAAA-corrupt",
        "",
        "not ascii: é",
    ],
    ids=["foreign", "corrupt", "empty", "non-ascii"],
)
def test_a_token_no_key_decrypts_is_a_clear_configuration_error(token: str) -> None:
    keyring = Keyring([generate_key()])
    with pytest.raises(CryptoError, match="cannot be decrypted with any configured") as info:
        keyring.decrypt(token)
    assert isinstance(info.value, ConfigurationError)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    with pytest.raises(CryptoError):
        keyring.rotate(token)


def test_a_token_that_is_not_text_is_a_crypto_error() -> None:
    key = generate_key()
    token = Fernet(key.encode()).encrypt(b"\xff\xfe binary").decode()
    with pytest.raises(CryptoError):
        Keyring([key]).decrypt(token)


def test_older_keys_decrypt_and_rotate_moves_a_token_to_the_newest_key() -> None:
    old, new = generate_key(), generate_key()
    token = Keyring([old]).encrypt("tok")
    both = Keyring([new, old])
    assert both.decrypt(token) == "tok"
    rotated = both.rotate(token)
    assert Keyring([new]).decrypt(rotated) == "tok"
    with pytest.raises(CryptoError):
        Keyring([new]).decrypt(token)
    assert Keyring([new]).decrypt(both.encrypt("fresh")) == "fresh"


def test_keys_from_the_setting_are_newest_first_and_blanks_are_ignored(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    settings = Settings(data_dir=tmp_path, encryption_keys=SecretStr(f" {new}, {old},"))
    keyring = Keyring.from_settings(settings)
    assert keyring.key_count == 2
    assert keyring.path is None
    assert Keyring([new]).decrypt(keyring.encrypt("x")) == "x"
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize("value", ["", " , ", "not-a-key", "é" * 44])
def test_a_malformed_setting_is_refused_without_echoing_it(tmp_path: Path, value: str) -> None:
    settings = Settings(data_dir=tmp_path, encryption_keys=SecretStr(value))
    with pytest.raises(ConfigurationError, match="TENANTRY_ENCRYPTION_KEYS") as info:
        Keyring.from_settings(settings)
    if value.strip(" ,"):
        assert value not in str(info.value)


def test_the_embedded_default_creates_a_private_key_file_once(tmp_path: Path) -> None:
    settings = embedded(tmp_path)
    first = Keyring.from_settings(settings)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(file_keys(path)) == 1
    assert first.path == path and first.key_count == 1
    token = first.encrypt("kept")

    second = Keyring.from_settings(settings)
    assert second.decrypt(token) == "kept"
    assert len(file_keys(path)) == 1
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]


def test_an_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / KEY_FILE
    path.write_text(f"# mine\n\n{key}\n")
    path.chmod(0o600)
    keyring = Keyring.from_file(path)
    assert file_keys(path) == [key]
    assert Keyring([key]).decrypt(keyring.encrypt("x")) == "x"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    Keyring.from_settings(embedded(tmp_path))
    path = tmp_path / "data" / KEY_FILE
    path.chmod(mode)
    with pytest.raises(ConfigurationError, match=r"accessible by group or others.*chmod 600"):
        Keyring.from_settings(embedded(tmp_path))


def test_a_key_file_with_a_bad_line_names_the_line_not_the_key(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_text(f"{generate_key()}\nbogus-key-material\n")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="key #2") as info:
        Keyring.from_file(path)
    assert "bogus-key-material" not in str(info.value)


def test_add_key_prepends_a_key_that_encrypts_from_then_on(tmp_path: Path) -> None:
    keyring = Keyring.from_settings(embedded(tmp_path))
    path = tmp_path / "data" / KEY_FILE
    [old] = file_keys(path)
    before = keyring.encrypt("before")

    keyring.add_key()

    new, kept = file_keys(path)
    assert kept == old and new != old
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyring.key_count == 2
    assert keyring.decrypt(before) == "before"
    assert Keyring([new]).decrypt(keyring.encrypt("after")) == "after"
    assert Keyring([new]).decrypt(keyring.rotate(before)) == "before"
    assert sorted(p.name for p in path.parent.iterdir()) == [KEY_FILE]


def test_a_running_keyring_picks_up_a_key_another_process_added(tmp_path: Path) -> None:
    server = Keyring.from_settings(embedded(tmp_path))
    operator = Keyring.from_settings(embedded(tmp_path))
    operator.add_key()
    rotated = operator.encrypt("rotated elsewhere")

    assert server.key_count == 1
    assert server.decrypt(rotated) == "rotated elsewhere"
    assert server.key_count == 2
    newest = file_keys(tmp_path / "data" / KEY_FILE)[0]
    assert Keyring([newest]).decrypt(server.encrypt("x")) == "x"


def test_add_key_is_refused_when_keys_come_from_the_setting(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, encryption_keys=SecretStr(generate_key()))
    with pytest.raises(ConfigurationError, match="prepend a new key there"):
        Keyring.from_settings(settings).add_key()


def test_a_deleted_key_file_is_a_clear_error(tmp_path: Path) -> None:
    keyring = Keyring.from_settings(embedded(tmp_path))
    os.unlink(tmp_path / "data" / KEY_FILE)
    with pytest.raises(ConfigurationError, match="is missing"):
        keyring.encrypt("x")


def test_a_key_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(b"\xff\xfe")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="is not ASCII"):
        Keyring.from_file(path)
