"""A tool asked for directly (an MCP client's ``tools/call``): a run of one step.

The run is recorded and audited like any run, and the call goes through the same
wrappers a model's call goes through (authorised first, at most once, metered). Its
record names the capability in its detail (``{"direct": capability}``), because its
prompt (``call <capability> <arguments>``) is no question for a model: a resume of a
direct call whose process died ends it (``end_interrupted``) instead of asking a model.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from pydantic_ai import RunContext
from pydantic_ai.usage import RunUsage
from pydantic_core import ValidationError, to_json

from core.allocation import Allocation, allocate, unoffered_reason
from core.budget.account import RunAccount
from core.budget.meter import RunMeter
from core.builder import RunGrant
from core.errors import BudgetExceeded, RunError, ToolError, ToolRefused
from core.logs import bound, log
from core.outcome import RunOutcome
from core.run_records import Ending, Resumed, finish_run, start_run
from core.tools import tool_name
from core.toolset import audit_refusal

if TYPE_CHECKING:
    from core.agent import AgentService

async def call_tool(agent: AgentService, grant: RunGrant, capability: str,
                    arguments: dict[str, Any]) -> RunOutcome:
    """Call ``capability`` with ``arguments`` under ``grant``, as a run of one step.

    The run completes with the tool's result (an error the tool reports included), is
    ``refused`` when the tool is not offered to the grant or the principal may not use
    it (audited as ``tool.refused``), ``halted`` at a ceiling, ``failed`` on arguments
    that do not fit the tool.
    """
    model_id = agent.models.check(agent.settings.model)
    prompt = f"call {capability} {to_json(arguments).decode()}"
    salt = await agent.db.run(start_run, grant.ctx, agent.audit, prompt=prompt,
                              model=model_id, conversation_id=None, roles=grant.extra_roles,
                              lease=agent.lease(grant), detail={"direct": capability})
    run = allocate(agent.wiring, grant, agent.models.get(model_id), model_id, salt,
                   RunAccount(agent.db, grant.ctx, RunMeter(grant.ctx), grant.plan,
                              grant.period), None)
    with bound(grant.ctx):
        ending, result = await _one_step(agent, grant, run, capability, arguments, salt)
        ending.direct = capability
        ending.refused = tuple(run.authorised.refused)
        ending.walltime_ms = int((time.monotonic() - run.started) * 1000)
        usage = await asyncio.shield(
            agent.db.run(finish_run, grant.ctx, agent.audit, ending, salt))
        await agent.sign_head(grant.ctx.tenant_id)
    return RunOutcome(
        run_id=grant.ctx.run_id, tenant_id=grant.ctx.tenant_id, status=ending.status,
        model=model_id, halt=ending.halt, error=ending.error, usage=usage,
        refused_tools=ending.refused, result=result if ending.status == "completed" else None,
    )


async def _one_step(agent: AgentService, grant: RunGrant, run: Allocation, capability: str,
                    arguments: dict[str, Any], salt: bytes) -> tuple[Ending, Any]:
    """The call through the run's authorised toolset, and how it ended (with its result)."""
    name = tool_name(capability)
    call = RunContext(deps=grant.ctx, model=run.model, usage=RunUsage(),
                      tool_call_id="direct", tool_name=name)
    tool = (await run.authorised.get_tools(call)).get(name)
    try:
        if tool is None:
            reason = unoffered_reason(agent.registry, grant, capability)
            refusal = ToolRefused(capability, reason, f"{capability!r} is not "
                                  f"offered to {grant.ctx.principal_id}")
            run.authorised.refused.append((capability, reason))
            await audit_refusal(agent.audit, grant.ctx, refusal, arguments, salt)
            raise refusal
        checked = tool.args_validator.validate_python(arguments)
        result = await run.authorised.call_tool(name, checked, call, tool)
    except ValidationError as exc:
        return Ending("failed", error=f"arguments of {capability} do not fit: " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())), None
    except ToolRefused as exc:
        return Ending("refused", error=str(exc)), None
    except BudgetExceeded as exc:
        return Ending.halted(exc), None
    except (ToolError, RunError) as exc:
        return Ending("failed", error=str(exc)), None
    except Exception as exc:
        log.exception("direct tool call failed unexpectedly")
        return Ending("failed", error=f"{type(exc).__name__}: {exc}"), None
    except asyncio.CancelledError:
        # A direct call is not resumed: it ends here, as the caller has gone.
        await asyncio.shield(agent.db.run(finish_run, grant.ctx, agent.audit, Ending(
            "failed", error="the call was cancelled", direct=capability), salt))
        raise
    refused = run.authorised.refused
    if refused:
        return Ending("refused", error=f"{capability!r} refused: {refused[0][1]}"), None
    return Ending("completed"), result


async def end_interrupted(agent: AgentService, grant: RunGrant, resumed: Resumed,
                          capability: str) -> RunOutcome:
    """End a direct call whose process stopped before it answered: ``failed``, never
    called again.

    Its caller waited on a connection that is gone, so a result now reaches nobody;
    and the tool may have applied its effect before the process stopped, which at most
    once per step forbids applying again. The run ends as any run ends, audited, its
    lease released; the effect, if there was one, is in the audit log (``tool.invoked``).
    """
    ending = Ending("failed", direct=capability, error=(
        f"the process serving this direct call of {capability} stopped before it answered: "
        "its caller was not answered and should call again; an effect the tool already "
        "applied is in the audit log, and the tool is not called again for this run"))
    with bound(grant.ctx):
        log.warning("interrupted direct call ended", capability=capability)
        usage = await agent.db.run(finish_run, grant.ctx, agent.audit, ending, resumed.salt)
        await agent.sign_head(grant.ctx.tenant_id)
    return RunOutcome(
        run_id=grant.ctx.run_id, tenant_id=grant.ctx.tenant_id, status=ending.status,
        model=resumed.record.model, error=ending.error, usage=usage,
    )
