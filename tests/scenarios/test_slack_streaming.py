"""The answer is streamed into Slack as the model writes it, through the metered call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel

from bots import wording
from core.models import ModelFactory
from core.settings import Settings
from standins.slack.api import SlackMessage, SlackUser
from tests.scenarios.harness import Scenario, Workspace, runs_of, thread
from tests.support.tenancy import plan

ADA = SlackUser("U1ADA")
FIRST = "The first line of the answer arrives on its own.\n"
REST = "The rest follows once the model has written it."


class Paced(ModelFactory):
    """A model that writes ``FIRST``, waits for ``go``, then writes ``REST``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.written = asyncio.Event()
        self.go = asyncio.Event()

    def check(self, model_id: str) -> str:
        return model_id

    def get(self, model_id: str) -> Model:
        def whole(_messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
            return ModelResponse(parts=[TextPart(FIRST + REST)])

        async def paced(_messages: list[ModelMessage],
                        _info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
            yield FIRST
            self.written.set()
            await self.go.wait()
            yield REST

        return FunctionModel(whole, stream_function=paced, model_name=model_id)


async def ask(scenario: Scenario, models: Paced) -> tuple[Workspace, str]:
    t1 = await scenario.link_workspace("T1", "acme", users=[ADA])
    scenario.runtime.agent.models = models
    return t1, await scenario.mention(t1, ADA.id, "tell me everything")


async def shown(scenario: Scenario, t1: Workspace, mention: str) -> SlackMessage:
    for _ in range(500):
        messages = thread(scenario.slack, t1.channel, mention)
        if messages and messages[0].text:
            return messages[0]
        await asyncio.sleep(0.01)
    raise AssertionError("nothing was streamed")


async def test_the_answer_appears_while_the_model_is_still_writing(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    models = Paced(scenario.settings)
    t1, mention = await ask(scenario, models)
    await models.written.wait()

    partial = await shown(scenario, t1, mention)
    assert partial.text == FIRST and partial.stream_state == "streaming"
    [running] = await runs_of(scenario, "acme")
    assert running.status == "running"

    models.go.set()
    await scenario.idle()
    [answer] = thread(scenario.slack, t1.channel, mention)
    [run] = await runs_of(scenario, "acme")
    assert answer.text == run.answer == FIRST + REST
    assert answer.stream_state == "stopped"
    assert run.input_tokens > 0 and run.cost_microcents > 0, "the streamed call was metered"


async def test_a_halt_mid_answer_ends_the_message_with_the_halt(scenario: Scenario) -> None:
    await scenario.tenant("acme", plan("brisk", run_walltime_ms=400))
    models = Paced(scenario.settings)
    t1, mention = await ask(scenario, models)

    await scenario.idle()  # the model never goes on: the run's walltime cuts it

    [answer] = thread(scenario.slack, t1.channel, mention)
    [run] = await runs_of(scenario, "acme")
    assert run.status == "halted"
    assert answer.text.startswith(FIRST) and REST not in answer.text
    after = answer.text.removeprefix(FIRST)
    assert after.lstrip().startswith(":pause_button: I paused this request: it reached "
                                     f"{wording.CEILINGS['walltime_ms']}")
    assert answer.stream_state == "stopped"
