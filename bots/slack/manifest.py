"""Tenantry's Slack app manifest, rendered for one deployment.

``manifests/slack.yaml`` is the single source of the app's configuration; its URLs use a
placeholder host. Rendering substitutes the deployment's base URL and slash command as text,
so the comments that justify each scope survive into what an operator pastes into Slack.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import yaml

from core.errors import InvalidInput

MANIFEST_PATH: Final = Path(__file__).resolve().parents[2] / "manifests" / "slack.yaml"
PLACEHOLDER_HOST: Final = "https://tenantry.example.com"
HANDLED_EVENTS: Final = frozenset(
    {"app_mention", "message.im", "app_home_opened", "app_uninstalled", "tokens_revoked"}
)
"""Bot events the Slack transport handles; the manifest subscribes to exactly these, since
Bolt answers an event without a handler with 404 and Slack then retries it."""

_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_SAFE_PATH: Final = re.compile(r"[A-Za-z0-9._~/-]*")
_COMMAND: Final = re.compile(r"/[a-z0-9_-]{1,31}")
_COMMAND_LINE: Final = re.compile(r"^(\s*- command: )/ask$", re.MULTILINE)


def render_manifest(base_url: str, command: str = "/ask") -> str:
    """Return the manifest YAML with every URL on ``base_url`` and the slash command renamed.

    Args:
        base_url: Where Tenantry's web process is reachable, e.g. ``https://agent.acme.io``,
            optionally with a path prefix. Slack only calls https URLs; plain http is
            accepted for loopback hosts, for local runs behind a tunnel or a test harness.
        command: The slash command, e.g. ``/ask`` (Slack allows 2-32 lowercase characters).

    Raises:
        InvalidInput: The URL is not https (or loopback http), carries credentials, a query
            or a fragment, or the command is not a valid Slack command name.
    """
    base = _base(base_url)
    if not _COMMAND.fullmatch(command):
        raise InvalidInput(f"not a Slack slash command (like /ask): {command!r}")
    text = MANIFEST_PATH.read_text(encoding="utf-8").replace(PLACEHOLDER_HOST, base)
    return _COMMAND_LINE.sub(lambda line: line.group(1) + command, text, count=1)


def bot_scopes() -> tuple[str, ...]:
    """The bot scopes the manifest declares: what the OAuth install URL should request.

    Slack refuses an install that asks for scopes the app's configuration lacks, so the
    transport's OAuth settings take their scopes from here rather than keep a second list.
    """
    manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    return tuple(str(scope) for scope in manifest["oauth_config"]["scopes"]["bot"])


def _base(base_url: str) -> str:
    """The normalised base URL (no trailing slash), or ``InvalidInput`` saying what is wrong."""
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError as bad:
        raise InvalidInput(f"not a URL: {base_url!r}") from bad
    host = parts.hostname or ""
    if parts.scheme == "http" and host not in _LOCAL_HOSTS:
        raise InvalidInput(f"Slack needs an https URL (http only for localhost): {base_url!r}")
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidInput(f"not an https URL: {base_url!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("the base URL must not carry credentials")
    if parts.query or parts.fragment or not _SAFE_PATH.fullmatch(parts.path):
        raise InvalidInput(f"the base URL may only add a plain path prefix: {base_url!r}")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
