"""Tests of the Teams app package and the manifest inside it."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bots.teams.package import MANIFEST_DIR, PACKAGE_FILES, build_package, render_manifest
from core.errors import InvalidInput

APP_ID = "0A1B2C3D-0000-4000-8000-000000000001"
HOST = "agent.acme.io"
COMMANDS = ["help", "budget", "audit", "link"]


@pytest.fixture
def schema(shared_dir: Path) -> dict[str, Any]:
    path = shared_dir / "schemas" / "teams-manifest-v1.30.schema.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _validate(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    validator = jsonschema.validators.validator_for(schema)
    # Against the meta-schema without format checks: one pattern (extensionFunction's
    # name) is ECMA-262's \p{L}, which Python's re cannot compile; no manifest of ours
    # reaches it.
    validator(validator.META_SCHEMA).validate(schema)
    validator(schema).validate(manifest)


def _unzip(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def _manifest(package: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_unzip(package)["manifest.json"])
    return loaded


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        kind, data = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length:at + 12 + length])[0] == zlib.crc32(
            kind + data)
        chunks.append((kind, data))
        at += 12 + length
    return chunks


def _header(png: bytes) -> tuple[int, int, int, int]:
    """Width, height, bit depth and colour type, from the IHDR chunk (always first)."""
    kind, data = _chunks(png)[0]
    assert kind == b"IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", data[:10])
    return width, height, depth, colour


def _rgba_pixels(png: bytes) -> set[tuple[int, ...]]:
    """Every distinct pixel of an 8-bit RGBA PNG whose rows are stored unfiltered.

    The shipped icons are written that way; an icon saved by an image editor will use
    row filters, and this reader then needs them.
    """
    width, height, depth, colour = _header(png)
    assert (depth, colour) == (8, 6)
    raw = zlib.decompress(b"".join(data for kind, data in _chunks(png) if kind == b"IDAT"))
    stride = 1 + width * 4
    assert len(raw) == height * stride
    assert {raw[y * stride] for y in range(height)} == {0}, "rows are unfiltered"
    return {tuple(raw[y * stride + 1 + x * 4:y * stride + 5 + x * 4])
            for y in range(height) for x in range(width)}


def test_the_package_manifest_is_valid_and_names_the_app_and_the_host(
    schema: dict[str, Any],
) -> None:
    manifest = _manifest(build_package(APP_ID, HOST))
    _validate(manifest, schema)
    assert manifest["manifestVersion"] == "1.30"
    assert manifest["id"] == manifest["bots"][0]["botId"] == APP_ID.lower()
    assert manifest["validDomains"] == [HOST]
    assert all(url.startswith(f"https://{HOST}/") for url in manifest["developer"].values()
               if url.startswith("http"))
    assert manifest["name"]["short"] == "Tenantry"
    assert "{{" not in json.dumps(manifest)


def test_the_bot_answers_in_every_scope_with_the_same_commands() -> None:
    [bot] = _manifest(build_package(APP_ID, HOST))["bots"]
    assert bot["scopes"] == ["personal", "team", "groupChat"]
    assert bot["supportsFiles"] is False and bot["isNotificationOnly"] is False
    lists = {tuple(entry["scopes"]): entry["commands"] for entry in bot["commandLists"]}
    assert sorted(lists) == [("groupChat",), ("personal",), ("team",)]
    for commands in lists.values():
        assert [command["title"] for command in commands] == COMMANDS
        assert all(command["description"] for command in commands)


def test_the_schema_check_catches_a_bad_bot_id(schema: dict[str, Any]) -> None:
    manifest = _manifest(build_package(APP_ID, HOST))
    manifest["bots"][0]["botId"] = "28:not-a-guid"
    with pytest.raises(jsonschema.ValidationError, match="28:not-a-guid"):
        _validate(manifest, schema)


def test_the_zip_holds_the_manifest_and_the_icons_at_its_root() -> None:
    package = build_package(APP_ID, HOST)
    files = _unzip(package)
    assert tuple(files) == PACKAGE_FILES
    for icon in ("color.png", "outline.png"):
        assert files[icon] == (MANIFEST_DIR / icon).read_bytes()
    assert files["manifest.json"].decode("utf-8") == render_manifest(APP_ID, HOST)
    assert build_package(APP_ID, HOST) == package, "the same inputs build the same bytes"


def test_the_icons_have_the_sizes_teams_requires() -> None:
    files = _unzip(build_package(APP_ID, HOST))
    assert _header(files["color.png"])[:2] == (192, 192)
    assert _header(files["outline.png"])[:2] == (32, 32)
    outline = _rgba_pixels(files["outline.png"])
    assert all(pixel == (255, 255, 255, 255) or pixel[3] == 0 for pixel in outline), \
        "the outline icon is white on transparent"
    assert (255, 255, 255, 255) in outline and any(p[3] == 0 for p in outline)
    assert len({p[:3] for p in _rgba_pixels(files["color.png"])}) > 1


@pytest.mark.parametrize("app_id", [
    "", "28:0a1b2c3d", "{" + APP_ID + "}", APP_ID + "\n", APP_ID.replace("-", ""),
    APP_ID + '","x":"',
])
def test_a_bad_app_id_is_refused(app_id: str) -> None:
    with pytest.raises(InvalidInput, match="GUID"):
        build_package(app_id, HOST)


@pytest.mark.parametrize("host", [
    "", "https://agent.acme.io", "agent.acme.io/teams", "agent.acme.io:443", "localhost",
    "agent.acme.io.", "10.0.0.1", "-agent.acme.io", "agent_1.acme.io", "agent .acme.io",
    "agent.acme.io\n", 'agent.acme.io","x', "a" * 64 + ".io",
])
def test_a_host_that_is_not_a_bare_dns_name_is_refused(host: str) -> None:
    with pytest.raises(InvalidInput, match="bare DNS name"):
        build_package(APP_ID, host)
