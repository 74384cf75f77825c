"""A purged tenant leaves no content anywhere in the database: checked on a full dump."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from bots.cli_tenants import purge_everywhere
from core.credentials import CredentialStore
from installs.links import slack_links
from installs.slack_store import slack_bots, slack_installations
from installs.teams_conversations import (
    first_activity,
    remember_conversation,
    teams_activities,
    teams_conversations,
)
from installs.teams_links import issue_link_code, redeem_link_code, teams_tenants
from standins.slack.api import SlackUser
from tests.scenarios.api_client import call, issue_key
from tests.scenarios.harness import Scenario, runs_of, thread
from tests.scenarios.test_api_runs import finished

ADA = SlackUser("U1ADA")
GIL = SlackUser("U2GIL")
DOCUMENT = "ZEBRA-7781: refunds of rockets are accepted within 30 days of purchase."
ENTRA = {"acme": "0a1b2c3d-0000-4000-8000-00000000ac3e",
         "globex": "0a1b2c3d-0000-4000-8000-00000000910b"}


def prompt(tenant_id: str) -> str:
    """A question whose words become the search tool's arguments."""
    return f"What does the handbook say about {tenant_id.upper()}-ELEPHANT-42? knowledge.search"


async def link_teams(scenario: Scenario, tenant_id: str) -> None:
    """Link an Entra tenant to the tenant and leave a conversation and an activity behind."""
    rt, entra = scenario.runtime, ENTRA[tenant_id]
    code = await scenario.db.run(issue_link_code, rt.keyring, tenant_id, timedelta(hours=1))
    await scenario.db.run(redeem_link_code, rt.audit, rt.keyring, code, entra,
                          f"teams:{entra}:5f0c1a2b-0000-4000-8000-0000000000a1")
    await scenario.db.run(issue_link_code, rt.keyring, tenant_id, timedelta(hours=1))
    conversation = f"a:1{tenant_id}-chat"
    await scenario.db.run(remember_conversation, tenant_id, entra, conversation,
                          {"serviceUrl": "https://smba.example/", "id": conversation})
    await scenario.db.run(first_activity, "1700000000000", entra, conversation)


def teams_rows(conn: Connection) -> dict[str, list[str]]:
    """Which Entra tenants each Teams table still holds rows of."""
    return {table.name: sorted(conn.scalars(select(table.c.entra_tenant_id)))
            for table in (teams_tenants, teams_conversations, teams_activities)}


def dump(conn: Connection) -> str:
    """Every value of every row of every table, as text: what a stolen backup holds."""
    lines = []
    for table in inspect(conn).get_table_names():
        for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
            lines.append(f"{table}: " + " | ".join(str(value) for value in row))
    return "\n".join(lines)


async def test_after_a_purge_no_prompt_answer_document_or_token_remains(
        scenario: Scenario) -> None:
    for tenant_id, team, user in (("acme", "T1", ADA), ("globex", "T2", GIL)):
        await scenario.tenant(tenant_id)
        workspace = await scenario.link_workspace(team, tenant_id, users=[user])
        grant = await scenario.runtime.agent.open(tenant_id=tenant_id, principal_id="ops",
                                                  principal_kind="service")
        await scenario.runtime.knowledge.add(grant.ctx, "handbook", f"{tenant_id} {DOCUMENT}")
        await CredentialStore(scenario.db, scenario.runtime.keyring).put(
            tenant_id, "crm_token", f"crm-token-{tenant_id}-5e6f")
        mention = await scenario.mention(workspace, user.id, prompt(tenant_id))
        await scenario.idle()
        assert thread(scenario.slack, workspace.channel, mention)
        await link_teams(scenario, tenant_id)
    [run] = await runs_of(scenario, "acme")
    for tenant_id in ("acme", "globex"):
        key = await issue_key(scenario, tenant_id)
        accepted = await call(scenario, "POST", "/v1/runs", key, json={"prompt": "hello"},
                              headers={"Idempotency-Key": f"order-{tenant_id}-9931"})
        await finished(scenario, key, accepted.body["id"])
    before = await scenario.db.run(dump)
    assert prompt("acme") in before and "acme ZEBRA-7781" in before, "the dump sees content"
    assert before.count("ACME-ELEPHANT-42") > 1, "the tool's arguments and results too"
    assert run.answer and run.answer in before
    assert "order-acme-9931" in before, "an Idempotency-Key is the tenant's own words"

    counts = await purge_everywhere(scenario.runtime, "acme", "cli:ops")

    after = await scenario.db.run(dump)
    for content in ("ACME-ELEPHANT-42", "acme ZEBRA-7781", run.answer, "xoxb-t1",
                    "order-acme-9931"):
        assert content not in after, content
    assert "GLOBEX-ELEPHANT-42" in after and "globex ZEBRA-7781" in after, "others keep theirs"
    assert "order-globex-9931" in after
    assert counts["slack_workspaces"] == 1 and counts["slack_messages"] == 1
    assert counts["credentials"] == 1 and counts["runs"] == 2
    assert counts["api_keys"] == 1 and counts["api_idempotency"] == 1
    assert (counts["teams_tenants"], counts["teams_conversations"], counts["teams_activities"],
            counts["teams_link_codes"], counts["install_links"]) == (1, 1, 1, 2, 0)

    def slack_rows(conn: Connection) -> dict[str, list[str]]:
        return {table.name: sorted(conn.scalars(select(table.c.team_id)))
                for table in (slack_links, slack_bots, slack_installations)}

    assert await scenario.db.run(slack_rows) == {
        "slack_links": ["T2"], "slack_bots": ["T2"], "slack_installations": ["T2"]}
    assert await scenario.db.run(teams_rows) == {
        name: [ENTRA["globex"]]
        for name in ("teams_tenants", "teams_conversations", "teams_activities")}
    assert "a:1acme-chat" not in after and "a:1globex-chat" in after
    report = await scenario.runtime.audit.verify("acme")
    assert report.ok, "the log outlives the purge and still verifies"
