from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from bots.cli import cli


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def invoke(runner: CliRunner, *args: str) -> click.testing.Result:
    return runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("path", list(all_commands(cli)), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(tenantry: CliRunner, path: tuple[str, ...]) -> None:
    result = invoke(tenantry, *path, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    description = result.output.split("\n\n")[1].strip()
    assert description and not description.startswith("Options:")
    example = re.search(r"^\s*Example:\s(.+\n)*?.*\btenantry\b", result.output, re.M)
    assert example, f"{' '.join(path)} --help has no example"


PLAN = ["plans", "create", "team", "--monthly-tokens", "100000",
        "--monthly-cost-microcents", "100000000", "--monthly-tool-calls", "100",
        "--run-tokens", "1420", "--run-tool-calls", "5", "--run-walltime-ms", "60000",
        "--run-cost-microcents", "10000000", "--capability", "budget.status"]


def test_an_operator_creates_a_tenant_runs_halts_and_resumes(tenantry: CliRunner) -> None:
    assert invoke(tenantry, *PLAN).exit_code == 0
    created = invoke(tenantry, "tenants", "create", "acme", "--name", "Acme", "--plan", "team")
    assert "tenant acme (Acme) on plan team: active" in created.output
    assert "acme\tAcme\tteam\tactive" in invoke(tenantry, "tenants", "list").output

    result = invoke(tenantry, "run", "--tenant", "acme", "--principal", "ops", "--model",
                    "sandbox", "--role", "member", "Please check budget.status and summarise "
                    "our usage for the team in one short paragraph with the figures")
    assert result.exit_code == 0, result.output
    assert "halted: ceiling tokens (limit 1420" in result.output
    run_id = re.search(r"tenantry runs resume (\S+)", result.output)
    assert run_id is not None

    resumed = invoke(tenantry, "runs", "resume", run_id.group(1))
    assert resumed.exit_code == 0, resumed.output
    assert ": completed" in resumed.output
    assert "[sandbox model" in resumed.output
    assert "1 tool calls" in resumed.output
    shown = invoke(tenantry, "runs", "show", run_id.group(1))
    assert "completed" in shown.output and "attempts 2" in shown.output

    again = invoke(tenantry, "runs", "resume", run_id.group(1))
    assert again.exit_code == 1 and "only unfinished runs resume" in again.output


def test_without_an_api_key_the_default_model_is_refused_not_replaced(
        tenantry: CliRunner) -> None:
    invoke(tenantry, *PLAN)
    invoke(tenantry, "tenants", "create", "acme", "--name", "Acme", "--plan", "team")
    result = invoke(tenantry, "run", "--tenant", "acme", "--principal", "ops", "hello")
    assert result.exit_code == 1
    assert "ANTHROPIC_API_KEY" in result.output and "--model sandbox" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenants", "show", "nobody"), "no tenant 'nobody'"),
        (("tenants", "create", "Bad Id", "--name", "x", "--plan", "team"), "tenant id must"),
        (("tenants", "create", "x", "--name", "x", "--plan", "gold"), "no plan 'gold'"),
        (("tenants", "create", "x", "--name", "x", "--plan", "team", "--time-zone", "Mars/Base"),
         "unknown time zone"),
        (("run", "--tenant", "nobody", "--principal", "p", "--model", "sandbox", "hi"),
         "no tenant 'nobody'"),
        (("run", "--tenant", "acme", "--principal", "p", "--model", "gpt-9", "hi"),
         "unknown model id 'gpt-9'"),
        (("runs", "resume", "not-a-run"), "no run 'not-a-run'"),
        (("plans", "set", "team", "--run-tokens", "-5"), "Invalid value"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_status(
        tenantry: CliRunner, args: tuple[str, ...], message: str) -> None:
    invoke(tenantry, *PLAN)
    invoke(tenantry, "tenants", "create", "acme", "--name", "Acme", "--plan", "team")
    result = tenantry.invoke(cli, list(args))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_suspended_tenant_is_refused_with_the_reason(tenantry: CliRunner) -> None:
    invoke(tenantry, *PLAN)
    invoke(tenantry, "tenants", "create", "acme", "--name", "Acme", "--plan", "team")
    assert "acme: suspended" in invoke(tenantry, "tenants", "suspend", "acme").output
    result = invoke(tenantry, "run", "--tenant", "acme", "--principal", "p", "--model",
                    "sandbox", "hi")
    assert result.exit_code == 1 and "suspended" in result.output
    assert "acme: active" in invoke(tenantry, "tenants", "resume", "acme").output


def test_plans_can_be_changed(tenantry: CliRunner) -> None:
    invoke(tenantry, *PLAN)
    result = invoke(tenantry, "plans", "set", "team", "--run-tokens", "999",
                    "--capability", "knowledge.search")
    assert "999 tokens" in result.output and "knowledge.search" in result.output
    shown = invoke(tenantry, "plans", "show", "team")
    assert "999 tokens" in shown.output and "budget.status" not in shown.output


def test_db_commands(tenantry: CliRunner) -> None:
    assert "database at revision" in invoke(tenantry, "db", "upgrade").output
    status = invoke(tenantry, "db", "status").output
    current, head = re.findall(r"current: (\S+)\s+head: (\S+)", status)[0]
    assert current == head


def test_serve_refuses_anonymous_teams_on_an_address_beyond_loopback(
    tenantry: CliRunner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANTRY_TEAMS_ALLOW_ANONYMOUS", "true")

    result = tenantry.invoke(cli, ["serve", "--host", "0.0.0.0"])  # noqa: S104

    assert result.exit_code == 1
    assert "refused while the server listens on '0.0.0.0'" in result.output


def test_serve_refuses_partial_teams_settings_naming_what_is_missing(
    tenantry: CliRunner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANTRY_TEAMS_APP_ID", "6f1c1e2a-93b5-4c3e-8d1e-5a0b7c9d2e11")

    result = tenantry.invoke(cli, ["serve"])

    assert result.exit_code == 1
    assert "TENANTRY_TEAMS_APP_PASSWORD, TENANTRY_TEAMS_APP_TENANT_ID" in result.output


def test_a_principal_without_a_role_is_told_how_to_get_one(tenantry: CliRunner) -> None:
    assert invoke(tenantry, *PLAN).exit_code == 0
    assert invoke(tenantry, "tenants", "create", "acme", "--name", "Acme", "--plan",
                  "team").exit_code == 0

    result = invoke(tenantry, "run", "--tenant", "acme", "--principal", "ops", "--model",
                    "sandbox", "check budget.status and knowledge.search")

    assert result.exit_code == 0, result.output
    assert ("refused: ops has no role in acme: grant one with `tenantry roles grant "
            "--tenant acme ops member` (budget.status was refused)") in result.output
    assert ("refused: knowledge.search is not in plan team: add it with `tenantry plans set "
            "team --capability knowledge.search`") in result.output
    assert "- budget.status: refused: not offered to this run" in result.output
    assert "__" not in result.output and "Unknown tool name" not in result.output
