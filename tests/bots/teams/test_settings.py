"""Teams settings: all three credentials or none, anonymous mode only on loopback, and
the local stand-in settings named at start."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bots.settings import ServerSettings
from bots.teams.auth import LocalConnectorHosts, host_validator
from bots.teams.settings import TeamsSettings
from bots.web import create_app
from core.errors import ConfigurationError
from core.settings import Settings

APP = "6f1c1e2a-93b5-4c3e-8d1e-5a0b7c9d2e11"
TENANT = "0d5c6a43-7a3e-4b0f-9c55-3f1e2d7a8b90"


def teams(**values: object) -> TeamsSettings:
    return TeamsSettings(**{"app_id": None, "app_password": None, "app_tenant_id": None,
                            **values})  # type: ignore[arg-type]


def test_teams_is_off_without_credentials_and_on_with_all_three() -> None:
    assert teams().enabled() is False
    assert teams(app_id=APP, app_password=SecretStr("s"), app_tenant_id=TENANT).enabled()


def test_partial_credentials_are_refused_naming_what_is_missing() -> None:
    with pytest.raises(ConfigurationError) as refused:
        teams(app_id=APP).enabled()

    assert "TENANTRY_TEAMS_APP_PASSWORD" in str(refused.value)
    assert "TENANTRY_TEAMS_APP_TENANT_ID" in str(refused.value)
    assert "TENANTRY_TEAMS_APP_ID" not in str(refused.value)


def test_the_server_refuses_to_start_with_partial_teams_settings() -> None:
    with pytest.raises(ConfigurationError, match="Teams is half configured"):
        create_app(Settings(), ServerSettings(), teams=teams(app_tenant_id=TENANT))


def test_ids_must_be_guids() -> None:
    with pytest.raises(ConfigurationError, match="TENANTRY_TEAMS_APP_ID must be a GUID"):
        teams(app_id="my-bot", app_password=SecretStr("s"), app_tenant_id=TENANT).enabled()


def test_anonymous_mode_is_refused_unless_the_server_listens_on_loopback() -> None:
    anonymous = teams(allow_anonymous=True)

    assert anonymous.enabled(listening_on="127.0.0.1")
    with pytest.raises(ConfigurationError, match="local development only"):
        anonymous.enabled(listening_on="0.0.0.0")  # noqa: S104


def test_the_password_never_prints() -> None:
    shown = repr(teams(app_id=APP, app_password=SecretStr("hunter2"), app_tenant_id=TENANT))

    assert "hunter2" not in shown


def test_connector_hosts_come_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANTRY_TEAMS_CONNECTOR_HOSTS", "127.0.0.1:8123, localhost:9")

    settings = TeamsSettings()

    assert settings.connector_hosts == ["127.0.0.1:8123", "localhost:9"]
    assert settings.overrides() == {"connector_hosts": ["127.0.0.1:8123", "localhost:9"]}


def test_replies_go_to_microsoft_over_https_unless_local_hosts_are_named() -> None:
    microsoft = host_validator(teams())
    local = host_validator(teams(connector_hosts=["127.0.0.1:8123"]))

    assert microsoft.enabled and isinstance(local, LocalConnectorHosts)
    assert microsoft.is_allowed("https://smba.trafficmanager.net/amer/")
    assert not microsoft.is_allowed("http://smba.trafficmanager.net/amer/")
    assert not microsoft.is_allowed("https://attacker.example.com/")
    assert not microsoft.is_allowed("https://127.0.0.1:8123/")
    assert local.is_allowed("http://127.0.0.1:8123/amer/")
    assert not local.is_allowed("http://127.0.0.1:8124/amer/")
    assert not local.is_allowed("https://smba.trafficmanager.net/amer/")
    assert not local.is_allowed("ftp://127.0.0.1:8123/")
