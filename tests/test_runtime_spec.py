"""The test server's generation answers held to OpenAI's published OpenAPI document, as the
runtime guard's tests drive them through the real SDK: chat completions and responses, plain
and streamed (each event against the spec's `text/event-stream` schema for the path), and the
errors the guard's tests inject (by `test_openai_spec.problems`).

Two differences from `test_openai_spec`'s check, both for these paths' schemas: OpenAPI 3.0's
`nullable: true` (which JSON Schema ignores) is honoured, as the SDK and the API do; and
objects are left open, because `Response` is an `allOf` of components, and closing each
component would refuse the properties its siblings declare."""

from __future__ import annotations

from functools import cache
from typing import Any

import openai
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from keysentry import openai_client
from servers.openai_api import Exchange, OpenAIServer, error
from test_openai_spec import problems, spec


def nullable(node: Any) -> Any:
    """`nullable: true` as JSON Schema says it: null is one more type (and enum value)."""
    if isinstance(node, list):
        return [nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: nullable(value) for key, value in node.items()}
    if node.get("nullable") is True:
        if isinstance(node.get("type"), str):
            copy["type"] = [node["type"], "null"]
        if isinstance(node.get("enum"), list):
            copy["enum"] = [*node["enum"], None]
        if "$ref" in node or "allOf" in node or "anyOf" in node or "oneOf" in node:
            copy = {"anyOf": [{"type": "null"}, {k: v for k, v in copy.items() if k != "nullable"}]}
    return copy


@cache
def validator_for(ref: str) -> Draft202012Validator:
    resource: Resource[Any] = Resource.from_contents(
        nullable(spec()), default_specification=DRAFT202012
    )
    registry: Registry[Any] = Registry().with_resource("urn:generation", resource)
    return Draft202012Validator({"$ref": f"urn:generation#{ref}"}, registry=registry)


def errors_of(ref: str, body: Any) -> list[str]:
    found = []
    for error_ in validator_for(ref).iter_errors(body):
        deepest = best_match([error_]) if not error_.context else best_match(error_.context)
        where = "/".join(map(str, deepest.absolute_path))
        found.append(f"{where}: {deepest.message[:300]}")
    return found


def answer_problems(exchange: Exchange) -> list[str]:
    """A generation answer: errors by `problems`, a 200 against its content type's schema."""
    if exchange.status != 200:
        return problems(exchange)
    streamed = exchange.headers["Content-Type"].startswith("text/event-stream")
    kind = "text/event-stream" if streamed else "application/json"
    content = spec()["paths"][exchange.path.removeprefix("/v1")]["post"]["responses"]["200"]
    ref = content["content"][kind]["schema"]["$ref"].removeprefix("#")
    events = [e for e in exchange.body if e != "[DONE]"] if streamed else [exchange.body]
    found = []
    for index, event in enumerate(events):
        found += [f"{exchange.path} #{index}: {e}" for e in errors_of(event_ref(ref, event), event)]
    return found


def event_ref(ref: str, event: Any) -> str:
    """For a union of typed events (`ResponseStreamEvent`), the member for the event's `type`,
    so an error names what is wrong with it rather than which member it is not."""
    schemas = spec()["components"]["schemas"]
    union = schemas.get(ref.rsplit("/", 1)[1], {}).get("anyOf", [])
    for member in union:
        name = member.get("$ref", "").rsplit("/", 1)[1]
        kinds = schemas[name].get("properties", {}).get("type", {}).get("enum", [])
        if isinstance(event, dict) and kinds == [event.get("type")]:
            return f"/components/schemas/{name}"
    return ref


def test_generation_answers_conform_to_openais_spec(api: OpenAIServer, key: str) -> None:
    sdk = openai_client(base_url=api.base_url, backoff_base_seconds=0.01)
    hello: Any = [{"role": "user", "content": "Say hello."}]
    sdk.chat.completions.create(model="gpt-4o-mini", messages=hello)
    list(sdk.chat.completions.create(model="gpt-4o-mini", messages=hello, stream=True))
    sdk.responses.create(model="gpt-4o-mini", input="Say hello.")
    list(sdk.responses.create(model="gpt-4o-mini", input="Say hello.", stream=True))
    limited = error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
    api.inject("/v1/chat", 429, limited, {"Retry-After": "1"})
    api.inject("/v1/responses", 500)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=hello)
    sdk.responses.create(model="gpt-4o-mini", input="Say hello.")
    billing = error("You exceeded your current quota", "insufficient_quota", "insufficient_quota")
    api.inject("/v1/chat", 429, billing)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=hello)
    found: list[str] = []
    for exchange in api.exchanges:
        found += answer_problems(exchange)
    assert found == [], "\n".join(found)
    statuses = {(e.path, e.status) for e in api.exchanges}
    assert {("/v1/chat/completions", 429), ("/v1/responses", 500)} <= statuses
    assert (
        sum(e.headers["Content-Type"].startswith("text/event-stream") for e in api.exchanges) == 2
    )


def test_the_stream_check_is_not_a_rubber_stamp() -> None:
    delta: dict[str, Any] = {"content": 3}
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    headers = {"Content-Type": "text/event-stream"}
    bad = Exchange("POST", "/v1/chat/completions", {}, 200, headers, [chunk, "[DONE]"])
    assert answer_problems(bad)
    delta["content"] = "3"
    assert answer_problems(bad) == []
