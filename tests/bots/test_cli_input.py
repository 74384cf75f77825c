"""Every bad value an operator can give the command line: its exit status and the one
line that says what is wrong, never a traceback."""

from __future__ import annotations

import socket
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.exc import OperationalError

from bots.cli import cli
from bots.cli_errors import describe_database_error

LIMITS = {"--monthly-tokens": "1000", "--monthly-cost-microcents": "1000",
          "--monthly-tool-calls": "10", "--run-tokens": "100", "--run-tool-calls": "5",
          "--run-walltime-ms": "1000", "--run-cost-microcents": "100"}


def plan(*extra: str, **limits: str) -> list[str]:
    values = {**LIMITS, **{"--" + k.replace("_", "-"): v for k, v in limits.items()}}
    return ["plans", "create", "team", *(x for kv in values.items() for x in kv), *extra]


@dataclass(frozen=True)
class Case:
    args: list[str]
    exit_code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)
    before: list[list[str]] = field(default_factory=list)
    never: str = "Traceback"


def _busy_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    _HELD.append(sock)
    return int(sock.getsockname()[1])


_HELD: list[socket.socket] = []
BAD_MODULE = "tenantry_no_such_package.tools:factory"
ON_PLAN = [plan(), ["tenants", "create", "acme", "--name", "Acme", "--plan", "team"]]

CASES: dict[str, Callable[[Path], Case]] = {
    "32-bit limit": lambda _: Case(plan(run_tool_calls=str(2**31)), 2,
                                   "2147483648 is not in the range 0<=x<=2147483647"),
    "64-bit limit": lambda _: Case(plan(monthly_tokens=str(2**63)), 2,
                                   f"{2**63} is not in the range 0<=x<={2**63 - 1}"),
    "retention days": lambda _: Case(plan("--retention-days", str(2**31)), 2,
                                     "is not in the range 1<=x<=2147483647"),
    "per-run ceiling above the allowance": lambda _: Case(
        plan(run_tokens="5000"), 0,
        "warning: plan team: run_tokens 5000 is above monthly_tokens 1000"),
    "unknown capability": lambda _: Case(
        plan("--capability", "crm.lookup"), 1,
        "Error: no capability provides crm.lookup; known: audit.recent, budget.status"),
    "capability module that does not import": lambda _: Case(
        ["plans", "list"], 1,
        f"Error: cannot load capability factory '{BAD_MODULE}' (TENANTRY_CAPABILITY_MODULES):"
        " ModuleNotFoundError: No module named 'tenantry_no_such_package'",
        env={"TENANTRY_CAPABILITY_MODULES": f"{BAD_MODULE},other.mod:make"}),
    "capability modules as broken JSON": lambda _: Case(
        ["plans", "list"], 1, "Error: TENANTRY_CAPABILITY_MODULES: ",
        env={"TENANTRY_CAPABILITY_MODULES": "[not json"}),
    "public URL not https": lambda _: Case(
        ["slack", "install-link", "--tenant", "acme"], 1,
        "Error: TENANTRY_PUBLIC_URL: Value error, must be an https:// URL (http:// only on "
        "loopback), got 'http://tenantry.example.org'",
        env={"TENANTRY_PUBLIC_URL": "http://tenantry.example.org"}, before=ON_PLAN),
    "port out of range": lambda _: Case(["serve", "--port", "70000"], 2,
                                        "70000 is not in the range 0<=x<=65535"),
    "port in use": lambda _: Case(["serve", "--port", str(port := _busy_port())], 1,
                                  f"Error: port {port} on 127.0.0.1 is already in use"),
    "unreachable database": lambda _: Case(
        ["--database-url", "postgresql://ops:hunter2secret@127.0.0.1:1/tenantry",
         "tenants", "list"], 1,
        "Error: cannot use the database at postgresql://ops:***@127.0.0.1:1/tenantry: "
        "connection failed",
        never="hunter2secret"),
    "not a database URL": lambda _: Case(
        ["--database-url", "mysql://db/x", "tenants", "list"], 1,
        "Error: database url must be sqlite:///FILE or postgresql+psycopg://..., got scheme"),
    "read-only database file": lambda tmp: Case(
        ["--database-url", f"sqlite:///file:{tmp / 't.db'}?mode=ro&uri=true", *plan()], 1,
        f"Error: the database file file:{tmp / 't.db'} is read-only", before=[plan()]),
    "missing database folder": lambda tmp: Case(
        ["--database-url", f"sqlite:///{tmp / 'absent' / 't.db'}", "tenants", "list"], 1,
        f"Error: cannot open the database file {tmp / 'absent' / 't.db'}: check that its "
        "folder exists"),
    "tenant name too long": lambda _: Case(
        ["tenants", "create", "acme", "--name", "x" * 201, "--plan", "team"], 2,
        "201 characters is longer than the 200 it may have"),
    "tenant id too long": lambda _: Case(
        ["tenants", "create", "a" * 65, "--name", "Acme", "--plan", "team"], 1,
        "Error: tenant id must be 1-64 characters", before=[plan()]),
    "granted principal too long": lambda _: Case(
        ["roles", "grant", "--tenant", "acme", "p" * 201, "member"], 2,
        "201 characters is longer than the 200 it may have"),
    "principal too long": lambda _: Case(
        ["run", "--tenant", "acme", "--principal", "p" * 201, "hello"], 2,
        "201 characters is longer than the 200 it may have"),
}


def run(runner: CliRunner, args: list[str], env: dict[str, str]) -> Result:
    return runner.invoke(cli, args, env=env)


@pytest.mark.parametrize("name", CASES)
def test_a_bad_value_is_one_line_and_an_exit_status(
        tenantry: CliRunner, tmp_path: Path, name: str) -> None:
    case = CASES[name](tmp_path)
    try:
        for args in case.before:
            assert run(tenantry, args, {}).exit_code == 0, args
        result = run(tenantry, case.args, case.env)
    finally:
        while _HELD:
            _HELD.pop().close()
    output = result.output
    assert result.exit_code == case.exit_code, output
    assert case.says in output, output
    assert (case.never not in output and result.exception is None) or \
        isinstance(result.exception, SystemExit)
    if case.exit_code == 1:
        assert len([line for line in output.splitlines() if line.startswith("Error:")]) == 1


def test_capability_modules_are_comma_separated_as_the_readme_writes_them(
        tenantry: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module, capability in (("acme_tools", "crm.lookup"), ("acme_more", "crm.notes")):
        (tmp_path / f"{module}.py").write_text(
            "class Capability:\n"
            f"    name = {capability!r}\n"
            "    description = 'looks a customer up'\n"
            "    def resolve(self, ctx):\n        return None\n"
            "def factory(settings, db):\n    return [Capability()]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = {"TENANTRY_CAPABILITY_MODULES": "acme_tools:factory, acme_more:factory"}

    result = run(tenantry, plan("--capability", "crm.lookup", "--capability", "crm.notes"),
                 env)

    assert result.exit_code == 0, result.output
    assert "capabilities: crm.lookup, crm.notes" in result.output
    for module in ("acme_tools", "acme_more"):
        sys.modules.pop(module, None)


@pytest.mark.parametrize(("cause", "says"), [
    ("database or disk is full", "cannot write the database file /srv/t.db: the disk "
                                 "holding it is full"),
    ("attempt to write a readonly database", "the database file /srv/t.db is read-only: "
                                             "make it (and its folder) writable by this user"),
])
def test_a_full_disk_or_read_only_file_names_the_file_and_the_cause(cause: str,
                                                                    says: str) -> None:
    error = OperationalError("INSERT INTO plans", {}, sqlite3.OperationalError(cause))
    assert describe_database_error(error, "sqlite:////srv/t.db") == says
