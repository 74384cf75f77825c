"""Tests of ``bots.slack.settings``: Slack is on with all three credentials, off with none."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bots.slack.settings import SlackSettings
from core.errors import ConfigurationError


def test_slack_is_on_with_all_three_settings_and_off_with_none() -> None:
    assert SlackSettings().enabled() is False
    assert SlackSettings(signing_secret=SecretStr("s"), client_id="1.2",
                         client_secret=SecretStr("c")).enabled() is True


def test_the_variables_keep_their_names_and_secrets_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANTRY_SLACK_SIGNING_SECRET", "sign-me")
    monkeypatch.setenv("TENANTRY_SLACK_COMMAND", "/tenantry")

    settings = SlackSettings()

    assert settings.command == "/tenantry"
    assert settings.signing_secret is not None
    assert settings.signing_secret.get_secret_value() == "sign-me"
    assert "sign-me" not in repr(settings)
    with pytest.raises(ConfigurationError) as raised:
        settings.enabled()
    assert "TENANTRY_SLACK_CLIENT_ID" in str(raised.value)
