"""Tests of the Slack app manifest and its rendering for a deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bots.slack.manifest import (
    HANDLED_EVENTS,
    MANIFEST_PATH,
    PLACEHOLDER_HOST,
    bot_scopes,
    render_manifest,
)
from core.errors import InvalidInput
from standins.slack.api import DEFAULT_SCOPES

BASE = "https://agent.acme.io"


@pytest.fixture
def schema(shared_dir: Path) -> dict[str, Any]:
    path = shared_dir / "schemas" / "slack-manifest.schema.1.0.0.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def _urls(manifest: dict[str, Any]) -> list[str]:
    settings = manifest["settings"]
    return [
        *manifest["oauth_config"]["redirect_urls"],
        *(command["url"] for command in manifest["features"]["slash_commands"]),
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]


def _validate(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    validator(schema).validate(manifest)


def test_the_shipped_manifest_is_valid(schema: dict[str, Any]) -> None:
    manifest = _load(MANIFEST_PATH.read_text(encoding="utf-8"))
    _validate(manifest, schema)
    assert all(url.startswith(PLACEHOLDER_HOST + "/slack/") for url in _urls(manifest))


def test_the_schema_check_catches_a_misspelt_setting(schema: dict[str, Any]) -> None:
    manifest = _load(MANIFEST_PATH.read_text(encoding="utf-8"))
    manifest["settings"]["socket_mode"] = False
    with pytest.raises(jsonschema.ValidationError, match="socket_mode"):
        _validate(manifest, schema)


def test_a_rendered_manifest_is_valid_and_points_at_the_deployment(
    schema: dict[str, Any],
) -> None:
    rendered = render_manifest(BASE + "/", command="/agent")
    manifest = _load(rendered)
    _validate(manifest, schema)
    assert PLACEHOLDER_HOST not in rendered
    assert sorted(set(_urls(manifest))) == [
        f"{BASE}/slack/events",
        f"{BASE}/slack/oauth_redirect",
    ]
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/agent" and command["usage_hint"]
    assert "# users.info: is_admin/is_owner" in rendered


def test_the_manifest_sets_up_a_grid_ready_http_app_with_home_and_messages() -> None:
    manifest = _load(render_manifest(BASE))
    features, settings = manifest["features"], manifest["settings"]
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True
    assert features["agent_view"]["agent_description"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["org_deploy_enabled"] is True
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_the_handled_events_are_exactly_the_subscribed_ones() -> None:
    manifest = _load(render_manifest(BASE))
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == HANDLED_EVENTS


def test_the_scopes_cover_the_events_and_methods_and_match_the_standin() -> None:
    scopes = set(_load(render_manifest(BASE))["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "im:history", "commands", "chat:write", "users:read"} <= scopes
    assert not scopes & {"channels:history", "groups:history", "im:read"}
    assert bot_scopes() == tuple(_load(render_manifest(BASE))["oauth_config"]["scopes"]["bot"])
    assert scopes == set(DEFAULT_SCOPES)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000/slack/events"),
        ("http://localhost:8080/", "http://localhost:8080/slack/events"),
        ("http://[::1]:3000", "http://[::1]:3000/slack/events"),
        (
            "https://Agent.Acme.io:8443/tenantry/",
            "https://agent.acme.io:8443/tenantry/slack/events",
        ),
    ],
)
def test_loopback_http_and_path_prefixes_are_accepted(base_url: str, expected: str) -> None:
    manifest = _load(render_manifest(base_url))
    assert manifest["settings"]["event_subscriptions"]["request_url"] == expected


@pytest.mark.parametrize(
    "base_url",
    [
        "http://agent.acme.io",
        "ftp://agent.acme.io",
        "agent.acme.io",
        "https://",
        "https://user:pw@agent.acme.io",
        "https://agent.acme.io/?next=1",
        "https://agent.acme.io/#top",
        "https://agent.acme.io/a b",
        "https://agent.acme.io:99999",
        "http://127.0.0.1.evil.example",
    ],
)
def test_bad_base_urls_are_refused(base_url: str) -> None:
    with pytest.raises(InvalidInput):
        render_manifest(base_url)


@pytest.mark.parametrize("command", ["ask", "/", "/Ask", "/two words", "/" + "x" * 32])
def test_bad_commands_are_refused(command: str) -> None:
    with pytest.raises(InvalidInput, match="slash command"):
        render_manifest(BASE, command=command)
