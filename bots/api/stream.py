"""``GET /v1/runs/{id}/events``: a run's progress and answer as server-sent events.

Each event of the run's audit log is one server-sent event whose id is its sequence
number in the tenant's log (monotonic, so a client reconnecting with
``Last-Event-ID`` gets exactly what came after). When the run has ended or halted and
every event was sent, a last ``run`` event (without an id: a reconnect gets it again)
carries the run as ``GET /v1/runs/{id}`` shows it, and the stream closes.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp_sse import sse_response

from bots.api.auth import authenticate
from bots.api.problems import problem
from bots.api.runs import own_run, view
from bots.web import RUNTIME
from core.audit.log import run_events_after
from core.runs import FINAL_STATUSES

POLL_S = 0.2
"""How often an open stream looks for the run's new events."""


def _last_event_id(request: web.Request) -> int:
    value = request.headers.get("Last-Event-ID", "0") or "0"
    if not value.isdigit() or len(value) > 18:
        raise problem(400, "Bad Request", "Last-Event-ID must be an event id of this stream")
    return int(value)


async def run_events(request: web.Request) -> web.StreamResponse:
    """Stream the run's events until it ends or halts."""
    runtime = request.config_dict[RUNTIME]
    key = await authenticate(request, runtime)
    record = await own_run(runtime, key, request.match_info["run_id"])
    after = _last_event_id(request)
    async with sse_response(request) as stream:
        while stream.is_connected():
            # Read the status first: events written before it ended are all found below.
            record = await own_run(runtime, key, record.id)
            ended = record.status in FINAL_STATUSES or record.status == "halted"
            for event in await runtime.db.run(run_events_after, key.tenant_id, record.id,
                                              after):
                data = json.dumps({"type": event.event, "time": event.time,
                                   "fields": dict(event.fields)})
                await stream.send(data, id=str(event.seq), event="progress")
                after = event.seq
            if ended:
                await stream.send(view(record).model_dump_json(), event="run")
                break
            await asyncio.sleep(POLL_S)
    return stream
