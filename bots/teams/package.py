"""Tenantry's Teams app package, built for one deployment.

``manifests/teams/`` holds the single source of the app: ``manifest.json`` (schema 1.30)
with ``{{APP_ID}}`` and ``{{HOST}}`` placeholders, and the two icons. An operator
uploads the built zip to the Teams admin centre (or sideloads it); its manifest names
the deployment's Entra app registration as both the app id and the bot id, and its
host as the one valid domain.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Final

from core.errors import InvalidInput
from installs.principals import check_guid

MANIFEST_DIR: Final = Path(__file__).resolve().parents[2] / "manifests" / "teams"
PACKAGE_FILES: Final = ("manifest.json", "color.png", "outline.png")
APP_ID_PLACEHOLDER: Final = "{{APP_ID}}"
HOST_PLACEHOLDER: Final = "{{HOST}}"

_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
"""Every entry's timestamp: the same inputs build the same bytes."""


def check_host(host: str) -> str:
    """``host``, lower-cased, if it is a bare DNS name such as ``agent.acme.io``.

    No scheme, port, path or trailing dot, and no IP address: Teams takes a domain in
    ``validDomains`` and calls the bot over https on its default port.

    Raises:
        InvalidInput: anything else.
    """
    name = host.lower() if isinstance(host, str) else ""
    labels = name.split(".")
    if (len(name) > 253 or len(labels) < 2 or labels[-1].isdigit()
            or not all(_LABEL.fullmatch(label) for label in labels)):
        raise InvalidInput(
            f"host must be a bare DNS name like agent.example.com (no scheme, port or "
            f"path), got {host!r}")
    return name


def render_manifest(app_id: str, host: str) -> str:
    """The manifest's JSON text for the deployment.

    Args:
        app_id: The Entra app registration's application (client) id, a GUID; the bot
            signs in as this app.
        host: Where the deployment's web process is reachable.

    Raises:
        InvalidInput: ``app_id`` is not a GUID or ``host`` not a bare DNS name.
    """
    guid, name = check_guid("Teams app id", app_id), check_host(host)
    text = (MANIFEST_DIR / "manifest.json").read_text(encoding="utf-8")
    return text.replace(APP_ID_PLACEHOLDER, guid).replace(HOST_PLACEHOLDER, name)


def build_package(app_id: str, host: str) -> bytes:
    """The app package: a zip of the rendered manifest and the icons, at its root.

    Raises:
        InvalidInput: ``app_id`` is not a GUID or ``host`` not a bare DNS name.
    """
    manifest = render_manifest(app_id, host).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for name in PACKAGE_FILES:
            data = manifest if name == "manifest.json" else (MANIFEST_DIR / name).read_bytes()
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16  # rw-r--r--, as unzip would restore it
            package.writestr(entry, data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
