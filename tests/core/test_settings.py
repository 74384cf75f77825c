"""Settings read from the environment as the README writes them."""

from __future__ import annotations

import pytest

from core.settings import Settings


@pytest.mark.parametrize(("value", "modules"), [
    ("acme.tools:factory", ["acme.tools:factory"]),
    ("acme.tools:factory, acme.more:make,", ["acme.tools:factory", "acme.more:make"]),
    ('["acme.tools:factory", "acme.more:make"]', ["acme.tools:factory", "acme.more:make"]),
    ("", []),
])
def test_capability_modules_are_comma_separated_or_a_json_list(
        monkeypatch: pytest.MonkeyPatch, value: str, modules: list[str]) -> None:
    monkeypatch.setenv("TENANTRY_CAPABILITY_MODULES", value)
    assert Settings().capability_modules == modules
