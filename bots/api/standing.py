"""``/v1/budget`` and ``/v1/audit/...``: what a tenant's own services may read of its
standing and of its audit log.

Any valid key of the tenant may read all three: the month's figures are what every
person of the tenant sees in Slack's App Home or the Teams card, and a checkpoint or an
inclusion proof reveals hashes and one event's type, never content, and is what a
service needs to check that what it did was logged. Every read is filtered by the
key's own tenant, so another tenant's figures or log are never reachable.
"""

from __future__ import annotations

import re

from aiohttp import web

from bots.api.auth import authenticate
from bots.api.models import (
    BudgetView,
    CheckpointView,
    Figure,
    PrincipalUsage,
    ProofView,
    RecentRunView,
)
from bots.api.problems import problem
from bots.standing import principal_share, tenant_standing
from bots.web import RUNTIME
from core.errors import NotFound

_SEQ = re.compile(r"^[0-9]{1,15}$")


async def read_budget(request: web.Request) -> web.Response:
    """``GET /v1/budget``: the tenant's month, and the key principal's share of it."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    held = await tenant_standing(runtime, tenant_id=key.tenant_id,
                                 principal_id=key.principal_id, is_admin=False)
    share = await principal_share(runtime, tenant_id=key.tenant_id,
                                  principal_id=key.principal_id, period=held.period)
    tokens, cost, calls = (Figure(used=f.used, allowance=f.allowance) for f in held.usage)
    return web.json_response(BudgetView(
        tenant_id=held.tenant_id, plan_id=held.plan_id, period=held.period,
        time_zone=held.time_zone, suspended=held.suspended,
        tokens=tokens, cost_microcents=cost, tool_calls=calls,
        principal=PrincipalUsage(
            principal_id=key.principal_id, runs=share.runs, tokens=share.tokens,
            cost_microcents=share.cost_microcents, tool_calls=share.tool_calls,
            recent=[RecentRunView(id=run.run_id, status=run.status,
                                  cost_microcents=run.cost_microcents,
                                  created_at=run.created_at.isoformat())
                    for run in held.recent]),
    ).model_dump())


async def read_checkpoint(request: web.Request) -> web.Response:
    """``GET /v1/audit/checkpoint``: 404 until the tenant's log has a signed one."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    latest = await runtime.audit.latest_checkpoint(key.tenant_id)
    if latest is None:
        raise problem(404, "Not Found", "the tenant's audit log has no signed checkpoint yet")
    return web.json_response(CheckpointView(
        size=latest.size, root=latest.root, note=latest.note,
        created_at=latest.created_at).model_dump())


async def read_proof(request: web.Request) -> web.Response:
    """``GET /v1/audit/proof?seq=N``: 422 for a ``seq`` that is not a positive whole
    number, 404 for one the tenant's log does not hold."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    sent = request.query.get("seq", "")
    if not _SEQ.match(sent) or int(sent) < 1:
        raise problem(422, "Unprocessable Content",
                      "seq must be an event's sequence number, a whole number from 1")
    seq = int(sent)
    try:
        proof = await runtime.audit.inclusion_proof(key.tenant_id, seq)
    except NotFound:
        raise problem(404, "Not Found", f"the tenant's audit log has no event {seq}") from None
    return web.json_response(ProofView(
        seq=seq, event=proof.event.event, leaf_hash=proof.leaf_hash, index=proof.index,
        tree_size=proof.tree_size, root=proof.root, proof=list(proof.proof),
        checkpoint=proof.checkpoint).model_dump())
