from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic_ai import RunContext
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage

from core.context import MonthlyRemaining, RunCeilings, TenantContext, derive_context
from core.credentials import CredentialStore
from core.crypto import Keyring, generate_key
from core.db.engine import Database
from core.errors import ConfigurationError, ToolFailed
from core.http_capability import REDACTED, HttpApiCapability
from core.tools import ToolBinding
from tests.support.tenancy import plan, tenant_on

TOKENS = {"acme": "tok-acme-5f2a9c", "globex": "tok-globex-77d1e0"}


@dataclass
class FakeSaasApi:
    """A loopback stand-in for a tenant-facing SaaS API with bearer-token auth."""

    base_url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/contacts", self.contacts)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/echo", self.echo)
        app.router.add_get("/big", self.big)
        app.router.add_get("/list", self.listing)
        app.router.add_get("/text", self.text)
        app.router.add_get("/redirect", self.redirect)
        return app

    def record(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        self.seen.append({"path": request.path, "auth": auth, "q": request.query.get("q"),
                          "cookie": request.headers.get("Cookie")})
        return auth

    async def contacts(self, request: web.Request) -> web.Response:
        auth = self.record(request)
        owner = {f"Bearer {t}": tenant for tenant, t in TOKENS.items()}.get(auth)
        if owner is None:
            return web.json_response({"error": "bad token"}, status=401)
        response = web.json_response(
            {"contacts": [{"name": f"{owner}'s match for {request.query['q']}"}]})
        response.set_cookie("sid", f"session-of-{owner}")
        return response

    async def status(self, request: web.Request) -> web.Response:
        auth = self.record(request)
        return web.Response(status=int(request.match_info["code"]),
                            text=f"nope, {auth} is not welcome", reason=f"Bad {auth}")

    async def slow(self, request: web.Request) -> web.Response:
        self.record(request)
        await asyncio.wait_for(self.release.wait(), 5)
        return web.json_response({})

    async def echo(self, request: web.Request) -> web.Response:
        return web.json_response({"you_sent": self.record(request)})

    async def big(self, request: web.Request) -> web.StreamResponse:
        self.record(request)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"[")
        for _ in range(10):
            await response.write(b"1," * 5000)
        await response.write(b"1]")
        await response.write_eof()
        return response

    async def listing(self, request: web.Request) -> web.Response:
        self.record(request)
        return web.json_response([1, 2, 3])

    async def text(self, request: web.Request) -> web.Response:
        self.record(request)
        return web.Response(text="<html>maintenance</html>")

    async def redirect(self, request: web.Request) -> web.Response:
        self.record(request)
        raise web.HTTPFound("http://127.0.0.2:1/steal")


@pytest.fixture
async def api() -> AsyncIterator[FakeSaasApi]:
    fake = FakeSaasApi()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://127.0.0.1:{port}"
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
async def store(db: Database) -> CredentialStore:
    credentials = CredentialStore(db, Keyring([generate_key()]))
    for tenant_id in ("acme", "globex", "initech"):
        await tenant_on(db, tenant_id, plan())
    for tenant_id, token in TOKENS.items():
        await credentials.put(tenant_id, "crm_token", token)
    return credentials


def ctx_for(tenant_id: str) -> TenantContext:
    return derive_context(
        tenant_id=tenant_id, principal_id="alice", principal_kind="user",
        scope=frozenset({"crm.lookup"}), ceilings=RunCeilings(1000, 5, 60_000, 10**9),
        remaining=MonthlyRemaining(10**6, 100, 10**12), initiator="user",
    )


@pytest.fixture
async def make(api: FakeSaasApi, store: CredentialStore) -> AsyncIterator[Any]:
    made: list[HttpApiCapability] = []

    def build(path: str = "/contacts?q={query}", **kwargs: Any) -> HttpApiCapability:
        capability = HttpApiCapability(
            credentials=store, name="crm.lookup", description="Look up CRM contacts.",
            base_url=api.base_url, credential_name="crm_token", path_template=path,
            cost_microcents=2_000, **kwargs,
        )
        made.append(capability)
        return capability

    yield build
    for capability in made:
        await capability.aclose()


async def call(capability: HttpApiCapability, tenant_id: str, query: str = "ada") -> Any:
    """The tool as a run calls it: with the run's context as pydantic-ai's ``RunContext``."""
    ctx = ctx_for(tenant_id)
    run = RunContext(deps=ctx, model=TestModel(), usage=RunUsage())
    return await capability.resolve(ctx).function(run, query=query)


def assert_no_token(*texts: str) -> None:
    for text in texts:
        for token in TOKENS.values():
            assert token not in text


def assert_clean(exc: BaseException) -> None:
    """No token in the error, and no aiohttp error (which holds the headers) behind it."""
    assert_no_token(str(exc), repr(exc))
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


@dataclass
class LogRecorder:
    entries: list[dict[str, Any]] = field(default_factory=list)

    def info(self, event: str, **fields: Any) -> None:
        self.entries.append({"event": event, **fields})


async def test_each_tenants_own_token_is_sent(
        make: Any, api: FakeSaasApi, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = LogRecorder()
    monkeypatch.setattr("core.http_capability.log", logs)
    capability = make()
    binding = capability.resolve(ctx_for("acme"))
    assert isinstance(binding, ToolBinding)
    assert (binding.name, binding.cost_microcents) == ("crm__lookup", 2_000)

    acme = await call(capability, "acme", "ada lovelace")
    globex = await call(capability, "globex", "grace")
    acme_again = await call(capability, "acme", "alan")

    assert acme == {"contacts": [{"name": "acme's match for ada lovelace"}]}
    assert globex == {"contacts": [{"name": "globex's match for grace"}]}
    assert acme_again["contacts"][0]["name"] == "acme's match for alan"
    assert [(s["auth"], s["q"]) for s in api.seen] == [
        (f"Bearer {TOKENS['acme']}", "ada lovelace"),
        (f"Bearer {TOKENS['globex']}", "grace"),
        (f"Bearer {TOKENS['acme']}", "alan"),
    ]
    assert [s["cookie"] for s in api.seen] == [None, None, None]
    assert [entry["event"] for entry in logs.entries] == ["http tool call"] * 3
    assert_no_token(repr(logs.entries), repr(capability))


async def test_the_query_is_url_encoded_into_the_path(make: Any, api: FakeSaasApi) -> None:
    query = "a&q=evil/../../admin?#x é"
    result = await call(make(), "acme", query)
    assert api.seen[0]["path"] == "/contacts" and api.seen[0]["q"] == query
    assert result["contacts"][0]["name"].endswith(query)


async def test_a_tenant_without_the_credential_gets_a_clear_result(
        make: Any, api: FakeSaasApi) -> None:
    result = await call(make(), "initech")
    assert result == {
        "error": "not_configured",
        "message": "crm.lookup is not set up for this workspace: an operator must store its "
                   "'crm_token' credential first.",
    }
    assert api.seen == []


@pytest.mark.parametrize(("code", "words"), [
    (401, "refused this workspace's 'crm_token' credential (401 Unauthorized)"),
    (403, "refused this workspace's 'crm_token' credential (403 Forbidden)"),
    (404, "rejected the request (404 Not Found)"),
    (429, "is rate limiting this workspace (429 Too Many Requests)"),
    (500, "failed (500 Internal Server Error)"),
    (503, "failed (503 Service Unavailable)"),
])
async def test_error_statuses_fail_the_tool_without_the_token(
        make: Any, api: FakeSaasApi, code: int, words: str) -> None:
    with pytest.raises(ToolFailed) as info:
        await call(make(f"/status/{code}?q={{query}}"), "acme")
    assert str(info.value).startswith(f"crm.lookup: the API {words}")
    assert api.seen[0]["auth"] == f"Bearer {TOKENS['acme']}"
    assert_clean(info.value)


async def test_a_timeout_fails_the_tool_without_the_token(make: Any) -> None:
    with pytest.raises(ToolFailed, match=r"did not answer within 0.2 s") as info:
        await call(make("/slow?q={query}", timeout_s=0.2), "globex")
    assert_clean(info.value)


async def test_an_unreachable_api_fails_the_tool(make: Any, store: CredentialStore) -> None:
    capability = HttpApiCapability(
        credentials=store, name="crm.lookup", description="d", base_url="http://127.0.0.1:9",
        credential_name="crm_token", path_template="/c?q={query}",
    )
    try:
        with pytest.raises(ToolFailed, match=r"could not reach the API \(") as info:
            await call(capability, "acme")
        assert_clean(info.value)
    finally:
        await capability.aclose()


async def test_redirects_are_not_followed(make: Any, api: FakeSaasApi) -> None:
    with pytest.raises(ToolFailed, match=r"redirect \(302 Found\); not followed") as info:
        await call(make("/redirect?q={query}"), "acme")
    assert_clean(info.value)
    assert len(api.seen) == 1


async def test_an_answer_that_echoes_the_token_is_redacted(make: Any) -> None:
    result = await call(make("/echo?q={query}"), "acme")
    assert result == {"you_sent": f"Bearer {REDACTED}"}
    assert_no_token(json.dumps(result))


async def test_the_answer_size_is_capped(make: Any) -> None:
    with pytest.raises(ToolFailed, match="larger than 20000 bytes"):
        await call(make("/big?q={query}", max_response_bytes=20_000), "acme")
    result = await call(make("/big?q={query}"), "acme")
    assert len(result["result"]) == 50_001


async def test_non_objects_are_wrapped_and_non_json_fails(make: Any) -> None:
    assert await call(make("/list?q={query}"), "acme") == {"result": [1, 2, 3]}
    with pytest.raises(ToolFailed, match="answer is not JSON"):
        await call(make("/text?q={query}"), "acme")


async def test_a_stored_value_that_is_not_a_bearer_token_is_never_sent(
        make: Any, store: CredentialStore, api: FakeSaasApi) -> None:
    await store.put("initech", "crm_token", "line one\r\nX-Injected: yes")
    with pytest.raises(ToolFailed, match="is not a bearer token") as info:
        await call(make(), "initech")
    assert "line one" not in str(info.value)
    assert api.seen == []


async def test_the_session_closes_and_reopens(make: Any) -> None:
    capability = make()
    await call(capability, "acme")
    await capability.aclose()
    await capability.aclose()
    assert (await call(capability, "globex"))["contacts"]


@pytest.mark.parametrize(("base_url", "path"), [
    ("http://crm.example.com", "/contacts?q={query}"),
    ("ftp://127.0.0.1", "/contacts?q={query}"),
    ("https://crm.example.com", "contacts?q={query}"),
    ("https://crm.example.com", "/contacts"),
    ("https://crm.example.com", "/contacts?q={query}&t={token}"),
    ("https://crm.example.com", "/contacts?q={query}{"),
])
async def test_unsafe_or_malformed_configuration_is_refused(
        store: CredentialStore, base_url: str, path: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^crm\.lookup: "):
        HttpApiCapability(credentials=store, name="crm.lookup", description="d",
                          base_url=base_url, credential_name="crm_token", path_template=path)
