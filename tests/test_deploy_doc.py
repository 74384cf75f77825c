"""``docs/deploy.md``'s table names every setting a deployment reads, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from bots.mcp.settings import McpSettings
from bots.settings import ServerSettings, WorkerSettings
from bots.slack.settings import SlackSettings
from bots.teams.settings import TeamsSettings
from core.settings import Settings

DEPLOY = Path(__file__).parent.parent / "docs" / "deploy.md"
SETTINGS: tuple[type[BaseSettings], ...] = (Settings, ServerSettings, WorkerSettings,
                                            SlackSettings, TeamsSettings, McpSettings)


def variables() -> set[str]:
    return {(str(cls.model_config.get("env_prefix", "")) + name).upper()
            for cls in SETTINGS for name in cls.model_fields}


def table_rows() -> set[str]:
    return set(re.findall(r"^\| `(TENANTRY_[A-Z0-9_]+)` \|", DEPLOY.read_text(), re.M))


def test_every_setting_is_in_the_table_and_the_table_holds_no_other() -> None:
    assert table_rows() == variables()


def test_the_readme_links_the_deployment_guide() -> None:
    assert "docs/deploy.md" in (DEPLOY.parent.parent / "README.md").read_text()


def test_serve_help_names_the_settings_that_matter_with_an_example() -> None:
    from click.testing import CliRunner

    from bots.cli import cli

    shown = CliRunner().invoke(cli, ["serve", "--help"])

    assert shown.exit_code == 0
    for variable in ("TENANTRY_SLACK_SIGNING_SECRET", "TENANTRY_SLACK_CLIENT_ID",
                     "TENANTRY_SLACK_CLIENT_SECRET", "TENANTRY_SLACK_API_URL", "TENANTRY_MODEL",
                     "TENANTRY_ANTHROPIC_API_KEY", "TENANTRY_DATABASE_URL",
                     "TENANTRY_PUBLIC_URL"):
        assert variable in shown.output
        assert variable in table_rows()
    assert "Example:" in shown.output and "tenantry serve --port" in shown.output
