"""A tool asked for directly (an MCP client's ``tools/call``): a run of one step.

The run is recorded and audited like any run, and the call goes through the same
wrappers a model's call goes through (authorised first, at most once, metered).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from pydantic_ai import RunContext
from pydantic_ai.usage import RunUsage
from pydantic_core import ValidationError, to_json

from core.allocation import allocate, unoffered_reason
from core.budget.account import RunAccount
from core.budget.meter import RunMeter
from core.builder import RunGrant
from core.errors import BudgetExceeded, RunError, ToolError, ToolRefused
from core.logs import bound, log
from core.outcome import RunOutcome
from core.run_records import Ending, finish_run, start_run
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
                              lease=agent.lease(grant))
    run = allocate(agent.wiring, grant, agent.models.get(model_id), model_id, salt,
                   RunAccount(agent.db, grant.ctx, RunMeter(grant.ctx), grant.plan,
                              grant.period), None)
    name = tool_name(capability)
    call = RunContext(deps=grant.ctx, model=run.model, usage=RunUsage(),
                      tool_call_id="direct", tool_name=name)
    tool = (await run.authorised.get_tools(call)).get(name)
    result: Any = None
    with bound(grant.ctx):
        ending: Ending
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
            ending = Ending("failed", error=f"arguments of {capability} do not fit: "
                            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                        for e in exc.errors()))
        except ToolRefused as exc:
            ending = Ending("refused", error=str(exc))
        except BudgetExceeded as exc:
            ending = Ending("halted", halt={"ceiling": exc.ceiling, "limit": exc.limit,
                                            "used": exc.used, "message": str(exc)})
        except (ToolError, RunError) as exc:
            ending = Ending("failed", error=str(exc))
        except Exception as exc:
            log.exception("direct tool call failed unexpectedly")
            ending = Ending("failed", error=f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            # A direct call is not resumed: it ends here, as the caller has gone.
            await asyncio.shield(agent.db.run(finish_run, grant.ctx, agent.audit, Ending(
                "failed", error="the call was cancelled"), salt))
            raise
        else:
            refused = run.authorised.refused
            ending = (Ending("refused", error=f"{capability!r} refused: {refused[0][1]}")
                      if refused else Ending("completed"))
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

