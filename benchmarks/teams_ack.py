"""Time to Teams' HTTP answer: channel-signed activities through the real app.

Teams gives a bot about fifteen seconds to answer an activity and retries one that is
not answered, but a message's answer also gates what the person sees next, so the
time to the HTTP response is what matters here, not the run behind it. Four servers
run on ``127.0.0.1`` in this process: the local ``TokenIssuer`` (the channel's signing
keys, the token endpoint) and ``BotConnector`` (the ``serviceUrl``), and the two apps
under test:

- tenantry: ``bots.web.create_app(settings)`` with Teams configured against the issuer
  and the connector as ``standins.slack.driver.open_scenario(teams=True)`` configures it
  (sandbox model, hashing embedder, a temporary SQLite database), four tenants on a
  plan and one Entra organisation linked to each, so every message is submitted and
  starts a run;
- baseline: a bare Agents SDK app: the SDK's ``jwt_authorization_decorator`` on
  ``POST /api/messages`` in front of a ``CloudAdapter`` and an ``AgentApplication``
  whose message handler does nothing. It checks tokens as Tenantry does: the same
  ``AgentAuthConfiguration`` (issuer check on), the same outbound host validator
  (``serviceUrl`` must be the connector and match the token's claim), the same
  connection manager and application options, and the same signing keys, since
  ``bots.teams.auth.trust_jwks`` re-points the SDK's one process-wide key client.

Each request is a distinct message (its own activity id, built by
``standins.teams.activities``), spread over the four organisations and a 1:1 chat, a
group chat and a channel thread in each, with a fresh channel token from the issuer:
RS256, ``aud`` the bot, ``serviceurl`` the connector. The SDK checks every token with
PyJWT (an RSA signature check) on a worker thread; ``PyJWKClient`` fetches the key set
once per URI and caches it, so that fetch falls in the warm-up. A batch sends ``N``
activities at once (50, then 200), signed beforehand, and records, per request, the
time from sending to having read the response. The requests are sent by a client in a
child process (its own event loop and core), so the client's own work does not queue
behind, or in front of, the server's; it keeps its connections open between batches,
so every timed batch runs on the connections the warm-up opened. After a warm-up, each
level runs three times per side, alternating sides; the figures are the medians of the
batches' p50s and p99s. The runs the messages start execute in the app's executor
after the answers (in the same event loop, as in ``tenantry serve``); between batches
the script waits for it to go idle, untimed.

For the tenantry side it also reports how long runs waited: from a message's answer
(read by the client) to its run's record (``runs.created_at``, written when the run
starts), median and max over the level's batches, and how long after the burst's last
answer the first run started. The machine's load average is printed before and after,
since the figures mean little on a busy machine.

    .venv/bin/python benchmarks/teams_ack.py [--repeats 3] [--levels 50 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import multiprocessing
import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path

from aiohttp import web
from figures import Batch, client_loop, load, percentile, report, report_waits
from microsoft_agents.activity import ActivityTypes
from microsoft_agents.hosting.aiohttp import CloudAdapter, jwt_authorization_decorator
from microsoft_agents.hosting.core import (
    AgentApplication,
    ApplicationOptions,
    MemoryStorage,
    TurnContext,
    TurnState,
)
from sqlalchemy import select
from sqlalchemy.engine import Connection as DbConnection

from bots.executor import Executor
from bots.runtime import Runtime
from bots.settings import ServerSettings
from bots.slack.settings import SlackSettings
from bots.teams.auth import auth_configuration, connections, host_validator
from bots.teams.settings import TeamsSettings
from bots.web import EXECUTOR, RUNTIME, create_app
from core.db.engine import reads
from core.db.schema import runs
from core.logs import configure
from core.settings import Settings
from core.tenants import Plan, create_plan, create_tenant
from installs.teams_links import issue_link_code, redeem_link_code
from standins.teams.activities import (
    Activities,
    Conversation,
    TeamsUser,
    channel_thread,
    group_chat,
    personal_chat,
)
from standins.teams.connector import BotConnector
from standins.teams.issuer import TokenIssuer
from standins.teams.scenario import APP_ID, APP_PASSWORD, teams_settings

ORGANISATIONS = (
    "3b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
    "5c4b3a29-1807-4f6e-9d5c-4b3a29180706",
    "7e6d5c4b-3a29-4180-8f6e-5d4c3b2a1908",
    "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
)
"""Entra organisations, each linked to a tenant of its own: runs of four tenants at once."""
TARGET_P99_MS = 100.0
"""Most milliseconds to the answer at p99, at the highest concurrency."""
TARGET_RATIO = 1.5
"""Most the tenantry side may take relative to the bare SDK app (p50 and p99)."""
SDK_CONFIGURATION = "agent_configuration"
"""Where the SDK's JWT decorator looks for the bot's identity (a plain string key)."""

Request = tuple[bytes, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Server:
    """A server under test and where to post to it.

    For tenantry also the executor to drain and the runtime whose runs are read.
    """

    name: str
    url: str
    executor: Executor | None = None
    runtime: Runtime | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    """The Teams channel's side: who signs, what activities look like, where they happen."""

    issuer: TokenIssuer
    activities: Activities
    places: tuple[tuple[Conversation, TeamsUser], ...]

    @classmethod
    def open(cls, issuer: TokenIssuer, connector: BotConnector) -> Channel:
        """A 1:1 chat, a group chat and a channel thread in each organisation."""
        places: list[tuple[Conversation, TeamsUser]] = []
        for number, organisation in enumerate(ORGANISATIONS):
            sender = TeamsUser(f"Person {number}")
            places += [(where, sender) for where in (personal_chat(organisation),
                                                     group_chat(organisation),
                                                     channel_thread(organisation))]
        return cls(issuer, Activities(APP_ID, connector.service_url), tuple(places))

    def message(self, serial: int) -> tuple[str, Request]:
        """A distinct message and its request with a fresh channel token; its activity id."""
        where, sender = self.places[serial % len(self.places)]
        activity = self.activities.message(where, sender, f"how are we doing? #{serial}")
        token = self.issuer.channel_token(APP_ID, self.activities.service_url)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return str(activity["id"]), (json.dumps(activity).encode(), headers)


def client_process(conn: Connection, limit: int) -> None:
    """The load generator: its own process, so its CPU is not the server's event loop.

    The process imports this module, and with it everything the server imports; a full
    garbage collection over those objects would stall the client in the middle of
    whichever batch it falls in. Frozen, they are left out.
    """
    gc.collect()
    gc.freeze()
    asyncio.run(client_loop(conn, limit))


async def batch(conn: Connection, server: Server, size: int, serials: itertools.count[int],
                channel: Channel) -> Batch:
    """``size`` distinct messages at once (signed beforehand); their p50 and p99."""
    made = [channel.message(next(serials)) for _ in range(size)]
    conn.send((server.url + "/api/messages", [request for _, request in made]))
    results: list[tuple[float, int, float]] = await asyncio.to_thread(conn.recv)
    times = [ms for ms, _, _ in results]
    # The SDK answers a message it accepted with 202, Tenantry too (nothing to return).
    timed = Batch(percentile(times, 50), percentile(times, 99),
                  sum(status != 202 for _, status, _ in results))
    if server.executor is None or server.runtime is None:
        return timed
    await server.executor.wait_idle()  # untimed: the runs behind the answers
    answered = {activity_id: at
                for (activity_id, _), (_, _, at) in zip(made, results, strict=True)}
    starts = await server.runtime.db.run(run_starts, list(answered))
    waits = tuple((starts[key] - at) * 1000 for key, at in answered.items() if key in starts)
    first = (min(starts.values()) - max(answered.values())) * 1000 if starts else None
    return Batch(timed.p50, timed.p99, timed.failures, waits, first)


@reads
def run_starts(tx: DbConnection, correlation_ids: list[str]) -> dict[str, float]:
    """When the runs of these correlation ids were created, in seconds since the epoch."""
    rows = tx.execute(select(runs.c.correlation_id, runs.c.created_at)
                      .where(runs.c.correlation_id.in_(correlation_ids))).all()
    return {row.correlation_id: row.created_at.timestamp() for row in rows}


def bare_sdk_app(settings: TeamsSettings) -> web.Application:
    """A bare Agents SDK app whose message handler does nothing, on its own aiohttp app.

    Its parts are built from ``settings`` by the functions Tenantry's transport uses
    (``bots.teams.auth``), so both check the same token and ``serviceUrl`` the same
    way and fetch outbound tokens from the same issuer; the application has the same
    options (no typing timer, turn state in memory). Nothing of Tenantry's own runs.
    """
    config = auth_configuration(settings)
    manager = connections(settings, config)
    adapter = CloudAdapter(connection_manager=manager, host_validator=host_validator(settings))
    agent: AgentApplication[TurnState] = AgentApplication(
        ApplicationOptions(bot_app_id=APP_ID, storage=MemoryStorage(),
                           start_typing_timer=False),
        connection_manager=manager)

    @agent.activity(ActivityTypes.message)
    async def on_message(context: TurnContext, state: TurnState) -> None:
        pass

    @jwt_authorization_decorator  # type: ignore[untyped-decorator]
    async def messages(request: web.Request) -> web.StreamResponse:
        response = await adapter.process(request, agent)
        return response if response is not None else web.Response(status=202)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    with warnings.catch_warnings():
        # The SDK's decorator reads a string key; aiohttp asks for typed keys.
        warnings.simplefilter("ignore")
        app[SDK_CONFIGURATION] = config
    return app


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; its base URL."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
        yield f"http://127.0.0.1:{int(runner.addresses[0][1])}"
    finally:
        await runner.cleanup()


async def link_organisations(runtime: Runtime) -> None:
    """Tenants on a plan, each with an Entra organisation linked by a redeemed link code."""
    await runtime.db.run(create_plan, Plan(
        id="team", monthly_tokens=10**9, monthly_cost_microcents=10**15,
        monthly_tool_calls=10**6, run_tokens=200_000, run_tool_calls=20,
        run_walltime_ms=60_000, run_cost_microcents=10**10, capabilities=frozenset()))
    for number, organisation in enumerate(ORGANISATIONS):
        tenant = f"bench{number}"
        await runtime.db.run(create_tenant, tenant_id=tenant, name=f"Bench {number}",
                             plan_id="team")
        code = await runtime.db.run(issue_link_code, runtime.keyring, tenant,
                                    timedelta(hours=1))
        await runtime.db.run(redeem_link_code, runtime.audit, runtime.keyring, code,
                             organisation, "teams:operator")


async def main(levels: list[int], repeats: int) -> int:
    configure("WARNING")
    missed = False
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="teams-ack-") as tmp:
        async with (TokenIssuer({APP_ID: APP_PASSWORD}) as issuer,
                    BotConnector(issuer) as connector):
            settings = Settings(
                database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
                data_dir=Path(tmp) / "data", model="sandbox", embedder="hashing",
                log_level="WARNING",
            )
            teams = teams_settings(issuer, connector)
            tenantry_app = create_app(
                settings, ServerSettings(public_url="https://tenantry.example.com"),
                SlackSettings(signing_secret=None, client_id=None, client_secret=None), teams)
            async with serve(tenantry_app) as tenantry_url, serve(bare_sdk_app(teams)) as bare_url:
                await link_organisations(tenantry_app[RUNTIME])
                sides = [Server("tenantry", tenantry_url, tenantry_app[EXECUTOR],
                                tenantry_app[RUNTIME]),
                         Server("bare SDK", bare_url)]
                channel = Channel.open(issuer, connector)
                serials = itertools.count(1)
                conn, child_end = multiprocessing.get_context("spawn").Pipe()
                client = multiprocessing.get_context("spawn").Process(
                    target=client_process, args=(child_end, 2 * max(levels)), daemon=True)
                client.start()
                try:
                    for side in sides:  # warm-up: open the connections, fill the caches
                        await batch(conn, side, max(levels), serials, channel)
                    results: dict[tuple[str, int], list[Batch]] = {}
                    for level in levels:
                        for _ in range(repeats):
                            for side in sides:
                                results.setdefault((side.name, level), []).append(
                                    await batch(conn, side, level, serials, channel))
                finally:
                    conn.send(None)
                    client.join(timeout=30)
                await tenantry_app[EXECUTOR].wait_idle()
                print(f"Teams answer latency ({repeats} batches per level, "
                      "median of batch percentiles)")
                print(f"  load average before: {load_before}; after: {load()}")
                for level in levels:
                    t50, t99 = report("tenantry", level, results[("tenantry", level)])
                    b50, b99 = report("bare SDK", level, results[("bare SDK", level)])
                    report_waits(level, results[("tenantry", level)])
                    r50, r99 = t50 / b50, t99 / b99
                    ratio_ok = r50 <= TARGET_RATIO and r99 <= TARGET_RATIO
                    missed |= not ratio_ok
                    print(f"  ratio     N={level:<4} p50 {r50:5.2f}x  p99 {r99:5.2f}x  "
                          f"(target <= {TARGET_RATIO}x: {'PASS' if ratio_ok else 'MISS'})")
                    if level == max(levels):
                        p99_ok = t99 <= TARGET_P99_MS
                        missed |= not p99_ok
                        print(f"  tenantry  N={level:<4} p99 {t99:.1f} ms (target <= "
                              f"{TARGET_P99_MS:.0f} ms: {'PASS' if p99_ok else 'MISS'})")
                sent = next(serials) - 1
                answered = sum(len(connector.messages(where.id)) for where, _ in channel.places)
                print(f"  messages sent: {sent} (tenantry {sent // 2}); answers posted "
                      f"by tenantry: {answered}")
    return 1 if missed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--levels", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.levels, args.repeats)))
