"""``--json``: each command's shape, as its help documents it, so scripts can rely on it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from bots.cli import cli

PLAN = ["plans", "create", "team", "--monthly-tokens", "100000", "--monthly-cost-microcents",
        "100000000", "--monthly-tool-calls", "100", "--run-tokens", "5000",
        "--run-tool-calls", "5", "--run-walltime-ms", "60000", "--run-cost-microcents",
        "10000000", "--capability", "budget.status"]
PLAN_KEYS = {"id", "monthly_tokens", "monthly_cost_microcents", "monthly_tool_calls",
             "run_tokens", "run_tool_calls", "run_walltime_ms", "run_cost_microcents",
             "capabilities", "retention_days"}
TENANT_KEYS = {"id", "name", "plan_id", "status", "time_zone"}
OUTCOME_KEYS = {"run_id", "tenant_id", "status", "model", "answer", "halt", "error",
                "refused_tools", "usage"}

# command (RUN stands for the id of the run made first), whether a list, the keys of
# each object
SHAPES: list[tuple[list[str], bool, set[str]]] = [
    (["plans", "list"], True, PLAN_KEYS),
    (["plans", "show", "team"], False, PLAN_KEYS),
    (["plans", "set", "team", "--run-tokens", "6000"], False, PLAN_KEYS),
    (["tenants", "list"], True, TENANT_KEYS),
    (["tenants", "show", "acme"], False, TENANT_KEYS | {"period", "used", "allowance"}),
    (["runs", "show", "RUN"], False, {"id", "tenant_id", "principal_id", "principal_kind",
                                      "model", "status", "answer", "input_tokens",
                                      "output_tokens", "tool_calls", "cost_microcents",
                                      "attempts", "created_at", "detail"}),
    (["roles", "list", "--tenant", "acme"], True, {"principal", "role"}),
    (["memory", "search", "--tenant", "acme", "refunds"], True,
     {"source", "chunk", "score", "text"}),
    (["audit", "verify", "--tenant", "acme"], False,
     {"source", "ok", "size", "root", "checkpoints_checked", "first_bad_seq", "reason"}),
    (["audit", "checkpoints", "--tenant", "acme"], True, {"size", "created_at", "root", "note"}),
    (["audit", "recent", "--tenant", "acme", "--limit", "3"], True,
     {"seq", "time", "event", "run_id", "fields"}),
    (["digests", "list", "--tenant", "acme"], True, set()),
    (["slack", "links"], True, set()),
    (["teams", "links"], True, set()),
]


def _json(runner: CliRunner, *args: str) -> Any:
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def made(tenantry: CliRunner, monkeypatch: pytest.MonkeyPatch,
         tmp_path: Any) -> tuple[CliRunner, str]:
    """Tenant acme with a grant, a document, a run and a signed checkpoint."""
    monkeypatch.setenv("TENANTRY_EMBEDDER", "hashing")
    assert set(_json(tenantry, *PLAN)) == PLAN_KEYS
    assert set(_json(tenantry, "tenants", "create", "acme", "--name", "Acme", "--plan",
                     "team")) == TENANT_KEYS
    doc = tmp_path / "faq.md"
    doc.write_text("Refunds are accepted within thirty days.", encoding="utf-8")
    for args in (["roles", "grant", "--tenant", "acme", "ops", "member"],
                 ["memory", "add", "--tenant", "acme", str(doc)],
                 ["audit", "checkpoint", "--tenant", "acme"]):
        assert tenantry.invoke(cli, args).exit_code == 0
    outcome = _json(tenantry, "run", "--tenant", "acme", "--principal", "ops", "--model",
                    "sandbox", "check budget.status")
    assert set(outcome) == OUTCOME_KEYS
    assert outcome["status"] == "completed" and outcome["usage"]["tool_calls"] == 1
    return tenantry, outcome["run_id"]


def test_every_json_shape(made: tuple[CliRunner, str]) -> None:
    runner, run_id = made
    for command, is_list, keys in SHAPES:
        value = _json(runner, *(run_id if arg == "RUN" else arg for arg in command))
        items = value if is_list else [value]
        assert isinstance(items, list), command
        if keys:
            assert items, command
        for item in items:
            assert set(item) == keys, command


def test_every_json_shape_is_in_its_help(tenantry: CliRunner) -> None:
    for command, _, keys in SHAPES:
        path = [arg for arg in command if not arg.startswith("-")][:2]
        text = " ".join(tenantry.invoke(cli, [*path, "--help"]).output.split())
        assert "--json" in text, path
        for key in keys:
            assert f'"{key}"' in text, (path, key)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_output_goes_to_stdout_and_json_logs_to_stderr(tenantry: CliRunner) -> None:
    result = tenantry.invoke(cli, ["--log-format", "json", "tenants", "list", "--json"],
                             env={"TENANTRY_LOG_LEVEL": "DEBUG"})

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    logged = [json.loads(line) for line in result.stderr.splitlines()]
    assert logged and all({"event", "level", "timestamp"} <= set(line) for line in logged)
