"""``/v1/openapi.json``: it describes every route the API serves, and the running API
answers as it says (schemathesis, fuzzing each operation against the real app)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from jsonschema import Draft202012Validator
from schemathesis import (
    APIOperation,
    AuthContext,
    Case,
    CheckFunction,
    GenerationMode,
    Response,
)
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bots.api import api_app
from tests.scenarios.api_client import call, issue_key
from tests.scenarios.harness import Scenario, runs_of

EXAMPLES = 15
"""Cases per operation: a few hundred requests in all, within a key's burst each."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_the_document_is_served_without_a_key_and_lists_every_route(
        scenario: Scenario) -> None:
    answer = await call(scenario, "GET", "/v1/openapi.json")

    assert answer.status == 200
    doc = answer.body
    assert doc["openapi"] == "3.1.0"
    registered = {(route.method.lower(), "/v1" + route.resource.canonical)
                  for route in api_app().router.routes()
                  if route.method != "HEAD" and route.resource is not None}
    described = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert registered == described
    assert len(described) == 11
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "a Tenantry API key"}
    start = doc["paths"]["/v1/runs"]["post"]
    assert start["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunRequest"}
    assert schemas["RunRequest"]["properties"]["prompt"]["maxLength"] == 16_000
    assert {p["name"] for p in start["parameters"]} == {"Idempotency-Key",
                                                         "X-Tenantry-Session"}
    assert start["responses"]["401"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ProblemBody"}
    assert "WWW-Authenticate" in start["responses"]["401"]["headers"]
    events = doc["paths"]["/v1/runs/{run_id}/events"]["get"]
    assert [p["name"] for p in events["parameters"]] == ["run_id", "Last-Event-ID"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    proof = doc["paths"]["/v1/audit/proof"]["get"]
    assert proof["parameters"][0] | {"description": ""} == {
        "name": "seq", "in": "query", "required": True, "description": "",
        "schema": {"type": "integer", "minimum": 1, "maximum": 10**15 - 1}}
    assert doc["paths"]["/v1/openapi.json"]["get"]["security"] == []
    assert doc["security"] == [{"bearer": []}]


def _fuzz_one(operation: APIOperation[Any, Any, Any, Any], url: str, key: str,
              seen: list[str]) -> None:
    """One operation's generated cases against the running app; what each answered."""
    headers = {"Authorization": f"Bearer {key}"}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def conforms(case: Case[Any]) -> None:
        response = case.call(base_url=url, headers=headers, timeout=10)
        case.validate_response(response, checks=CHECKS)
        seen.append(f"{operation.label} {response.status_code}")

    conforms()


def _fuzz(doc: dict[str, Any], url: str, keys: dict[str, str]) -> list[str]:
    seen: list[str] = []
    for result in schemathesis.openapi.from_dict(doc).get_all_operations():
        assert isinstance(result, Ok), result
        _fuzz_one(result.ok(), url, keys[result.ok().label], seen)
    return seen


async def test_every_operation_answers_as_the_document_says(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    doc = (await call(scenario, "GET", "/v1/openapi.json")).body
    labels = [f"{method.upper()} {path}" for path, item in doc["paths"].items()
              for method in item]
    # One key per operation, so no operation's cases are slowed to its rate limit.
    keys = {label: await issue_key(scenario, "acme", f"svc:fuzz{n}")
            for n, label in enumerate(labels)}

    seen = await asyncio.to_thread(_fuzz, doc, scenario.url, keys)

    assert {s.rsplit(" ", 1)[0] for s in seen} == set(labels)
    assert "POST /v1/runs 202" in seen
    assert "POST /v1/memory 201" in seen
    assert "GET /v1/budget 200" in seen


def _walk(doc: dict[str, Any], url: str, keys: list[str]) -> list[str]:
    """Sequences of calls that follow the document's links (a run's id into reading,
    streaming and resuming it; a document's name into deleting it); what each answered."""
    seen: list[str] = []
    pool = itertools.cycle(keys)

    schema = schemathesis.openapi.from_dict(doc)
    # Valid calls only: a negative case drops the key, and then nothing links.
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])

    @schema.auth(refresh_interval=None)
    class Keys:
        """A key in turn for each call, as the API's own clients present it."""

        def get(self, case: Case[Any], ctx: AuthContext) -> str:
            return next(pool)

        def set(self, case: Case[Any], data: str, ctx: AuthContext) -> None:
            case.headers["Authorization"] = f"Bearer {data}"

    class Walk(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"base_url": url, "timeout": 10}

        def validate_response(self, response: Response, case: Case[Any],
                              additional_checks: list[CheckFunction] | None = None,
                              **kwargs: Any) -> None:
            seen.append(f"{case.operation.label} {response.status_code}")
            super().validate_response(response, case, additional_checks, **kwargs)

    Walk.run(settings=settings(max_examples=40, deadline=None, database=None,
                               phases=[Phase.generate], stateful_step_count=6,
                               suppress_health_check=list(HealthCheck)))
    return seen


async def test_linked_calls_find_what_the_first_call_made(scenario: Scenario) -> None:
    await scenario.tenant("acme")
    doc = (await call(scenario, "GET", "/v1/openapi.json")).body
    # Keys taken in turn, so no sequence is slowed to one key's rate limit.
    keys = [await issue_key(scenario, "acme", f"svc:walk{n}") for n in range(8)]

    # schemathesis reads ``conversation_id`` as the key of a "Conversation" resource that
    # no operation produces, and then never starts a walk at ``POST /v1/runs``: the walk
    # leaves the optional field out (the fuzzing above sends it).
    del doc["components"]["schemas"]["RunRequest"]["properties"]["conversation_id"]

    seen = await asyncio.to_thread(_walk, doc, scenario.url, keys)

    assert "POST /v1/runs 202" in seen
    assert "GET /v1/runs/{run_id} 200" in seen, "a run's id was followed to read it"
    assert "GET /v1/runs/{run_id}/events 200" in seen, "and to stream its events"
    assert "POST /v1/memory 201" in seen
    assert "DELETE /v1/memory/{source} 200" in seen, "a stored name was followed to delete it"


async def test_text_with_a_nul_is_refused_before_it_reaches_the_database(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    key = await issue_key(scenario, "acme")

    prompt = await call(scenario, "POST", "/v1/runs", key, json={"prompt": "a\x00b"})
    document = await call(scenario, "POST", "/v1/memory", key,
                          json={"source": "faq", "text": "a\x00b"})
    run = await call(scenario, "GET", "/v1/runs/a%00b", key)
    gone = await call(scenario, "DELETE", "/v1/memory/a%00b", key)

    assert (prompt.status, prompt.body["detail"].split(":")[0]) == (422, "prompt")
    assert (document.status, document.body["detail"].split(":")[0]) == (422, "text")
    assert (run.status, gone.status) == (404, 404)
    assert await runs_of(scenario, "acme") == []


async def test_deleting_a_document_by_a_name_none_can_have_is_not_found(
        scenario: Scenario) -> None:
    await scenario.tenant("acme")
    key = await issue_key(scenario, "acme")

    answers = [await call(scenario, "DELETE", f"/v1/memory/{name}", key)
               for name in ("%20", "%2F", "%0A")]

    assert [(a.status, a.body["detail"]) for a in answers] == [(404, "no such document")] * 3
