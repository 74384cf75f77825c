"""One tenant on Slack and Teams at once: one audit log, one ledger; two tenants on Teams
never see each other; a restart delivers a parked Teams request into its conversation."""

from __future__ import annotations

import asyncio

from bots.settings import ServerSettings
from core.budget.ledger import used
from core.settings import Settings
from installs.teams_conversations import conversation_reference
from standins.slack.api import SlackUser
from standins.teams.activities import TeamsUser, group_chat, personal_chat
from tests.scenarios.harness import Scenario, open_scenario, open_teams_side, runs_of, today
from tests.support.tenancy import plan

ORG = "4d5e6f70-8192-4a3b-8c4d-5e6f708192a3"
OTHER_ORG = "8e9fa0b1-c2d3-4e4f-9a5b-6c7d8e9fa0b1"
ADA = TeamsUser("Ada")
GUS = TeamsUser("Gus")
SAM = SlackUser("U1SAM")


async def test_slack_and_teams_runs_share_one_audit_log_and_one_exact_ledger(
    teams: Scenario,
) -> None:
    await teams.tenant("acme", plan("small", monthly_tokens=1_000_000))
    await teams.teams.link(ORG, "acme")
    workspace = await teams.link_workspace("T1", "acme", users=[SAM])
    chats = [group_chat(ORG) for _ in range(4)]

    await asyncio.gather(
        *(teams.mention(workspace, SAM.id, f"slack question {n}") for n in range(4)),
        *(teams.teams.send(teams.teams.activities.message(chat, ADA, f"teams question {n}"))
          for n, chat in enumerate(chats)))
    await teams.idle()

    runs = await runs_of(teams, "acme")
    assert sorted(r.principal_id.split(":")[0] for r in runs) == ["slack"] * 4 + ["teams"] * 4
    assert {r.status for r in runs} == {"completed"}
    tokens, cost, _calls = await teams.db.run(used, "acme", today())
    assert tokens == sum(r.input_tokens + r.output_tokens for r in runs) > 0
    assert cost == sum(r.cost_microcents for r in runs)
    report = await teams.runtime.audit.verify("acme")
    assert report.ok and report.size > 8
    assert all(len(teams.teams.connector.messages(chat.id)) == 1 for chat in chats)


async def test_two_organisations_on_teams_keep_their_tenants_apart(teams: Scenario) -> None:
    await teams.tenant("acme")
    await teams.tenant("globex")
    await teams.teams.link(ORG, "acme")
    await teams.teams.link(OTHER_ORG, "globex")
    acme_chat, globex_chat = group_chat(ORG), group_chat(OTHER_ORG)

    await asyncio.gather(
        teams.teams.send(teams.teams.activities.message(acme_chat, ADA, "acme asks")),
        teams.teams.send(teams.teams.activities.message(globex_chat, GUS, "globex asks")))
    await teams.idle()

    [acme_run] = await runs_of(teams, "acme")
    [globex_run] = await runs_of(teams, "globex")
    assert acme_run.principal_id == f"teams:{ORG}:{ADA.aad_object_id}"
    assert globex_run.principal_id == f"teams:{OTHER_ORG}:{GUS.aad_object_id}"
    assert await teams.db.run(conversation_reference, "globex", acme_chat.id) is None
    assert "acme asks" not in " ".join(teams.teams.texts(globex_chat.id))


async def test_a_tenant_on_both_is_one_tenant_to_the_audit_log_verify(teams: Scenario) -> None:
    await teams.tenant("acme")
    await teams.teams.link(ORG, "acme")
    chat = personal_chat(ORG)

    await teams.teams.send(teams.teams.activities.message(chat, ADA, "hello"))
    await teams.idle()

    checkpoint = await teams.runtime.audit.latest_checkpoint("acme")
    assert checkpoint is not None  # signed without anyone asking, after the run
    assert (await teams.runtime.audit.verify("acme")).ok


async def test_a_teams_request_parked_at_shutdown_is_answered_after_the_restart(
    settings: Settings,
) -> None:
    patient = ServerSettings(run_admission_max_delay_ms=3_600_000)
    chat = group_chat(ORG)
    async with open_teams_side() as side:
        async with open_scenario(settings, server=patient, teams=side) as first:
            await first.tenant("acme")
            await first.teams.link(ORG, "acme")
            with first.executor.gate.serving():
                status, _ = await side.send(side.activities.message(chat, ADA, "still there?"))
                await first.executor.shutdown()  # as the app's cleanup does
            [queued] = await runs_of(first, "acme")
            assert status == 202 and queued.status == "queued"
            assert side.connector.messages(chat.id) == []

        async with open_scenario(settings, server=patient, teams=side) as second:
            await second.idle()
            [run] = await runs_of(second, "acme")

        assert run.id == queued.id and run.status == "completed"
        assert run.correlation_id == queued.correlation_id  # the Teams activity id
        assert side.texts(chat.id) == [run.answer]
