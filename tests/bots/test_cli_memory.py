"""``tenantry memory add``: files too large or not UTF-8 are refused while reading."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bots import cli_memory
from bots.cli import cli
from core.knowledge import MAX_DOCUMENT_BYTES


@pytest.fixture
def acme(tenantry: CliRunner, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The operator's command line with tenant acme, on the hashing embedder."""
    monkeypatch.setenv("TENANTRY_EMBEDDER", "hashing")
    for args in (["plans", "create", "team", "--monthly-tokens", "1", "--monthly-cost-microcents",
                  "1", "--monthly-tool-calls", "1", "--run-tokens", "1", "--run-tool-calls", "1",
                  "--run-walltime-ms", "1", "--run-cost-microcents", "1"],
                 ["tenants", "create", "acme", "--name", "Acme", "--plan", "team"]):
        assert tenantry.invoke(cli, args).exit_code == 0
    return tenantry


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args))


def test_a_bad_file_stops_the_command_before_anything_is_stored(
        acme: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "faq.md"
    good.write_text("Refunds are accepted within thirty days.", encoding="utf-8")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Rückgabe innerhalb von dreißig Tagen".encode("latin-1"))

    result = invoke(acme, "memory", "add", "--tenant", "acme", str(good), str(latin))

    assert result.exit_code == 1
    assert f"Error: {latin}: not UTF-8 text (byte 1) (nothing stored" in result.output
    assert "Traceback" not in result.output
    found = invoke(acme, "memory", "search", "--tenant", "acme", "refunds thirty days")
    assert "faq.md" not in found.output


def test_the_help_states_the_size_limit(acme: CliRunner) -> None:
    assert f"{MAX_DOCUMENT_BYTES:,} bytes" in invoke(acme, "memory", "add", "--help").output


def test_good_files_are_stored_and_bad_ones_skipped_when_asked(
        acme: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_memory, "MAX_DOCUMENT_BYTES", 1_000)
    good = tmp_path / "faq.md"
    good.write_text("Refunds are accepted within thirty days.", encoding="utf-8")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Rückgabe innerhalb von dreißig Tagen".encode("latin-1"))
    large = tmp_path / "large.txt"
    large.write_text("word " * 1_000, encoding="utf-8")

    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"binary\x00data")
    result = invoke(acme, "memory", "add", "--tenant", "acme", "--skip-unreadable", str(latin),
                    str(large), str(nul), str(good))

    assert result.exit_code == 0
    assert f"skipped {nul}: holds NUL characters (first at character 6)" in result.output
    assert f"skipped {latin}: not UTF-8 text (byte 1)" in result.output
    assert f"skipped {large}: larger than 1,000 bytes" in result.output
    assert "faq.md: 1 chunks" in result.output
    found = invoke(acme, "memory", "search", "--tenant", "acme", "refunds thirty days")
    assert "faq.md#0" in found.output


def test_an_endless_file_is_refused_after_the_limit_not_read_to_its_end(acme: CliRunner) -> None:
    result = invoke(acme, "memory", "add", "--tenant", "acme", "/dev/zero")

    assert result.exit_code == 1
    assert f"/dev/zero: larger than {MAX_DOCUMENT_BYTES:,} bytes" in result.output
