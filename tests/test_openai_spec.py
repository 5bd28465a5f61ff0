"""The OpenAI test server held to OpenAI's published OpenAPI document.

Every answer `tests/servers/openai_api.py` gives while keysentry (and the real openai SDK, or
raw HTTP where the SDK cannot send a malformed request) walks every path the product uses is
checked against the pinned spec (`tests/spec/`, see its README): the status is one the spec
lists for that path and method, and the body validates against that response's schema
(JSON Schema 2020-12, `$ref`s resolved with `referencing`); errors are `ErrorResponse`s.

The spec does not list every status the real API answers (most operations list only 200). A
status it does not list is accepted only when `UNLISTED_STATUSES` names why, and its body must
still be an `ErrorResponse`. Where real traffic differs from the spec
(../shared/reference/openai-api.md, marked [obs]), the server follows the observation and
`OBSERVED_EXCEPTIONS` names the difference; nothing else is let through.
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import openai
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from keygen import key_of
from keysentry.scanner.keys import KeyKind
from keysentry.secret import Secret
from keysentry.verify.client import ApiClient
from keysentry.verify.liveness import Status, check
from keysentry.verify.spend import KeyMap, spend
from servers.openai_api import DAY, Exchange, OpenAIServer, Spend, error

SPEC_FILE = Path(__file__).parent / "spec" / "openai-openapi.json"
SPEC_URI = "urn:openai-openapi"
SRC = Path(__file__).parents[1] / "src" / "keysentry"

# Statuses the real API answers that the spec does not list for most operations, and why we
# accept them; the body must still be an ErrorResponse.
UNLISTED_STATUSES = {
    400: "malformed-request: a missing or malformed parameter (start_time, limit, group_by); the "
    "spec lists 400 for a few operations only, the API answers it for any bad request",
    401: "unauthenticated: a bad, revoked or restricted key (docs: error-codes, 401)",
    403: "forbidden: a key without the scope (docs: error-codes, 403)",
    404: "not-found: an unknown project, key or service account, or URL",
    429: "rate-limited: the spec declares TooManyRequests on usage and costs, and 429 exists "
    "everywhere (docs: error-codes, 429)",
    500: "server-error (docs: error-codes, 500)",
    503: "overloaded (docs: error-codes, 503)",
}
# Real traffic that differs from the spec; each is matched by name in `_exception`.
OBSERVED_EXCEPTIONS = {
    "bare-string-403": "the management plane refuses a project key with a 403 whose `error` is "
    'a bare string ("…Missing scopes: api.management.read…"), not the spec\'s Error object '
    "(reference openai-api.md §1.2 [obs], seen in two public repositories)",
}
# Every call the product makes, by its SDK chain, and the spec operation it is.
SDK_OPERATIONS = {
    "models.list": ("GET", "/models"),
    "models.with_raw_response.list": ("GET", "/models"),
    "admin.organization.admin_api_keys.list": ("GET", "/organization/admin_api_keys"),
    "admin.organization.admin_api_keys.retrieve": ("GET", "/organization/admin_api_keys/{key_id}"),
    "admin.organization.admin_api_keys.delete": ("DELETE", "/organization/admin_api_keys/{key_id}"),
    "admin.organization.projects.list": ("GET", "/organization/projects"),
    "admin.organization.projects.api_keys.list": (
        "GET",
        "/organization/projects/{project_id}/api_keys",
    ),
    "admin.organization.projects.api_keys.retrieve": (
        "GET",
        "/organization/projects/{project_id}/api_keys/{api_key_id}",
    ),
    "admin.organization.projects.api_keys.delete": (
        "DELETE",
        "/organization/projects/{project_id}/api_keys/{api_key_id}",
    ),
    "admin.organization.projects.service_accounts.delete": (
        "DELETE",
        "/organization/projects/{project_id}/service_accounts/{service_account_id}",
    ),
    "admin.organization.projects.service_accounts.create": (
        "POST",
        "/organization/projects/{project_id}/service_accounts",
    ),
    "admin.organization.projects.service_accounts.list": (
        "GET",
        "/organization/projects/{project_id}/service_accounts",
    ),
    "admin.organization.projects.spend_limit.retrieve": (
        "GET",
        "/organization/projects/{project_id}/spend_limit",
    ),
    "admin.organization.projects.spend_limit.update": (
        "POST",
        "/organization/projects/{project_id}/spend_limit",
    ),
    "admin.organization.projects.spend_limit.delete": (
        "DELETE",
        "/organization/projects/{project_id}/spend_limit",
    ),
    "admin.organization.usage.costs": ("GET", "/organization/costs"),
    "admin.organization.usage.completions": ("GET", "/organization/usage/completions"),
}


# What key rotation (issue 14) will call; held to the spec before the product calls it.
ROTATION_OPERATIONS = {
    ("POST", "/organization/projects/{project_id}/service_accounts"),
    ("POST", "/organization/projects/{project_id}/service_accounts/{service_account_id}/api_keys"),
    ("GET", "/organization/projects/{project_id}/spend_limit"),
    ("POST", "/organization/projects/{project_id}/spend_limit"),
    ("DELETE", "/organization/projects/{project_id}/spend_limit"),
}


@cache
def spec() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return document


def closed(node: Any) -> Any:
    """The spec with every object schema closed (`unevaluatedProperties: false`): the spec
    leaves them open, so a misplaced field (an admin key's owner nested as `{type, user:{…}}`
    instead of the spec's flat object) would validate. The test server may send only what the
    spec declares; the real API may send more, which is no concern of this check."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: closed(value) for key, value in node.items()}
    open_object = "properties" in node and node.get("type", "object") == "object"
    if open_object and not {"additionalProperties", "unevaluatedProperties"} & node.keys():
        copy["unevaluatedProperties"] = False
    return copy


@cache
def registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(
        closed(spec()), default_specification=DRAFT202012
    )
    loaded: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return loaded


def pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def schema_errors(ref: str, body: Any) -> list[str]:
    """Validation errors of body against the spec's schema at JSON pointer `ref`."""
    validator = Draft202012Validator({"$ref": f"{SPEC_URI}#{ref}"}, registry=registry())
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]


class Operation(NamedTuple):
    method: str
    template: str  # the spec's path, "/organization/projects/{project_id}"


def operation_of(method: str, path: str) -> Operation | None:
    """The spec operation a request path is (literal segments win over templates)."""
    relative = path.removeprefix("/v1")
    candidates = []
    for template, item in spec()["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if method.lower() in item and re.fullmatch(pattern, relative):
            candidates.append((template.count("{"), template))
    return Operation(method, min(candidates)[1]) if candidates else None


def _exception(exchange: Exchange) -> str | None:
    body = exchange.body
    if (
        exchange.status == 403
        and isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and "Missing scopes" in body["error"]
    ):
        return "bare-string-403"
    return None


def problems(exchange: Exchange) -> list[str]:
    """Why this answer does not conform to the spec (empty when it does)."""
    where = f"{exchange.method} {exchange.path} -> {exchange.status}"
    found = []
    if not exchange.headers.get("Content-Type", "").startswith("application/json"):
        found.append(f"{where}: Content-Type {exchange.headers.get('Content-Type')!r}")
    retry_after = exchange.headers.get("Retry-After")
    if retry_after is not None and not (retry_after.isdigit() and int(retry_after) >= 1):
        found.append(f"{where}: Retry-After {retry_after!r} is not whole seconds >= 1")
    operation = operation_of(exchange.method, exchange.path)
    if operation is None:
        return [*found, f"{where}: no such operation in the spec"]
    item = ["paths", operation.template, operation.method.lower(), "responses"]
    responses = spec()["paths"][operation.template][operation.method.lower()]["responses"]
    listed = responses.get(str(exchange.status))
    if listed is None:
        if exchange.status not in UNLISTED_STATUSES:
            return [*found, f"{where}: status not in the spec, nor in UNLISTED_STATUSES"]
        if _exception(exchange):
            return found
        errors = schema_errors("/components/schemas/ErrorResponse", exchange.body)
        return found + [f"{where}: ErrorResponse: {e}" for e in errors]
    location = "/" + pointer(*item, str(exchange.status))
    if "$ref" in listed:
        location = listed["$ref"].removeprefix("#")
        listed = spec()["components"]["responses"][location.rsplit("/", 1)[1]]
    if "content" not in listed:
        return found
    errors = schema_errors(
        f"{location}/content/{pointer('application/json')}/schema", exchange.body
    )
    return found + [f"{where}: {e}" for e in errors]


# --- the server, an organization, and the product walking every path ---


class Org(NamedTuple):
    user: str
    restricted: str
    bot: str
    bot_account: str
    admin: str
    other_admin: str
    since: int


@pytest.fixture
def org(server: OpenAIServer, rng: random.Random) -> Org:
    now = int(time.time())
    today = now - now % DAY
    o = server.org
    o.project("proj_app")
    o.project("proj_bots")
    o.project("proj_old", archived=True)
    user = key_of(KeyKind.PROJECT, rng).key
    o.add_key(user, "proj_app", id="key_user")
    restricted = key_of(KeyKind.PROJECT, rng).key
    o.add_key(
        restricted,
        "proj_app",
        id="key_restricted",
        restricted=True,
        owner_project_access="inactive",
    )
    bot = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    bot_record = o.add_key(bot, "proj_bots", id="key_bot", owner_type="service_account")
    for index in range(25):  # a second page of keys
        o.add_key(key_of(KeyKind.PROJECT, rng).key, "proj_old", id=f"key_old{index}")
    admin = key_of(KeyKind.ADMIN, rng).key
    o.add_key(admin, None, id="key_admin")
    other_admin = key_of(KeyKind.ADMIN, rng).key
    o.add_key(other_admin, None, id="key_admin2")
    o.spend += [
        Spend(today, "key_user", "proj_app", 3.0, "gpt-4o", 1000, 1000),
        Spend(today, "key_restricted", "proj_app", 4.0),
        Spend(today, "key_bot", "proj_bots", 5.0),
    ]
    return Org(user, restricted, bot, bot_record.owner_id, admin, other_admin, today - DAY)


def raw_get(server: OpenAIServer, path_and_query: str, key: str) -> int:
    """A GET the SDK would not send (a missing required parameter, plain repeated arrays)."""
    request = urllib.request.Request(
        server.base_url + path_and_query, headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def walk_every_path(
    server: OpenAIServer, org: Org, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything keysentry calls, successes and errors, through the product where it can."""
    for value in (
        org.user,
        org.restricted,
        org.admin,
        key_of(KeyKind.PROJECT, random.Random(1)).key,
    ):
        check(Secret(value))  # live, restricted 401, admin, invalid_api_key 401
    sdk = openai.OpenAI(
        api_key=org.user, base_url=server.base_url, project="proj_other", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):  # mismatched_project
        sdk.models.list()

    admin = ApiClient(Secret(org.admin), admin=True, sleep=lambda s: None)
    keymap = KeyMap(admin)  # projects (archived too), every key page
    assert [r.owner for r in keymap.match(Secret(org.bot))] == ["service_account"]
    assert [r.id for r in keymap.match_admin(Secret(org.other_admin))] == ["key_admin2"]
    (user,) = keymap.match(Secret(org.user))
    spend(admin, user, keymap.keys_in("proj_app"), org.since)  # per-key costs
    server.org.costs_per_key = "refused"
    spend(admin, user, keymap.keys_in("proj_app"), org.since)  # 400, then usage estimate
    (bot,) = keymap.match(Secret(org.bot))
    spend(admin, bot, keymap.keys_in("proj_bots"), org.since)  # 400, then project costs
    server.org.costs_per_key = "spec"

    organization = admin.sdk.admin.organization
    organization.projects.service_accounts.list("proj_bots")
    organization.projects.service_accounts.retrieve(org.bot_account, project_id="proj_bots")
    organization.projects.retrieve("proj_app")
    failing: list[Callable[[], Any]] = [
        lambda: organization.usage.costs(start_time=openai.omit),  # missing start_time
        lambda: organization.usage.costs(start_time=0, limit=181),
        lambda: organization.usage.completions(start_time=0, limit=0),
        lambda: organization.usage.costs(start_time=0, group_by=["model"]),
        lambda: organization.projects.list(limit=101),
        lambda: organization.projects.api_keys.list("proj_nope"),
        lambda: organization.projects.api_keys.retrieve("key_nope", project_id="proj_app"),
        lambda: organization.admin_api_keys.retrieve("key_nope"),
        lambda: organization.projects.api_keys.delete("key_bot", project_id="proj_bots"),
    ]
    for call in failing:
        with pytest.raises(openai.APIStatusError):
            call()
    assert (
        raw_get(server, "/organization/costs?group_by=project_id&group_by=api_key_id", org.admin)
        == 400
    )
    assert (
        raw_get(
            server,
            f"/organization/costs?start_time={org.since}&group_by=project_id"
            "&group_by=api_key_id&limit=3",
            org.admin,
        )
        == 200
    )
    assert raw_get(server, "/organization/projects", org.user) == 403  # the bare string
    assert raw_get(server, f"/organization/costs?start_time={org.since}", org.user) == 403
    server.inject(
        "/v1/organization/costs",
        429,
        error("Rate limit reached", "requests", "rate_limit_exceeded"),
        {"Retry-After": "2"},
    )
    with pytest.raises(openai.RateLimitError):
        organization.usage.costs(start_time=org.since)

    walk_the_rotation_paths(server, organization)

    monkeypatch.setenv("OPENAI_ADMIN_KEY", org.admin)
    assert cli("revoke", "--project", "proj_app", "--key-id", "key_user", "--yes").code == 0
    assert cli("revoke", "--project", "proj_bots", "--key-id", "key_bot", "--yes").code == 0
    assert cli("revoke", "--admin", "--key-id", "key_admin2", "--yes").code == 0
    assert check(Secret(org.bot)).status is Status.INVALID


def walk_the_rotation_paths(server: OpenAIServer, organization: Any) -> None:
    """What key rotation (issue 14) will call: a service account with its key, a second key,
    and a project's hard spend limit; successes and refusals."""
    accounts = organization.projects.service_accounts
    created = accounts.create("proj_bots", name="keysentry-production-2026-12-01")
    assert created.api_key is not None and created.api_key.value.startswith("sk-svcacct-")
    assert check(Secret(created.api_key.value)).status is Status.LIVE
    accounts.api_keys.create(created.id, project_id="proj_bots", name="second")
    bare = accounts.create("proj_bots", name="bare", create_service_account_only=True)
    assert bare.api_key is None and bare.role == "none"
    limits = organization.projects.spend_limit
    refused: list[Callable[[], Any]] = [
        lambda: accounts.create("proj_old", name="archived"),
        lambda: limits.retrieve("proj_app"),  # none set yet
        lambda: limits.update("proj_app", threshold_amount=0, currency="USD", interval="month"),
        lambda: limits.delete("proj_bots"),
    ]
    for call in refused:
        with pytest.raises(openai.APIStatusError):
            call()
    limits.update("proj_app", threshold_amount=10_000, currency="USD", interval="month")
    assert limits.retrieve("proj_app").threshold_amount == 10_000
    limits.delete("proj_app")


def test_every_answer_the_server_gives_conforms_to_openais_spec(
    server: OpenAIServer, org: Org, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    walk_every_path(server, org, cli, monkeypatch)
    failures = [p for e in server.exchanges for p in problems(e)]
    assert not failures, "\n".join(failures)
    ok = {
        (op.method, op.template)
        for e in server.exchanges
        if e.status == 200 and (op := operation_of(e.method, e.path))
    }
    assert set(SDK_OPERATIONS.values()) <= ok, "an operation the product calls never succeeded"
    assert ok >= ROTATION_OPERATIONS, "an operation key rotation needs never succeeded"
    statuses = {e.status for e in server.exchanges}
    assert {200, 400, 401, 403, 404, 429} <= statuses
    exceptions = {_exception(e) for e in server.exchanges} - {None}
    assert exceptions == set(OBSERVED_EXCEPTIONS)


def test_the_check_catches_answers_that_break_the_spec() -> None:
    """The validator is not a rubber stamp: each kind of breach is reported."""
    page = {"object": "list", "data": [], "has_more": False}
    headers = {"Content-Type": "application/json"}

    def answer(method: str, path: str, status: int, body: Any, **extra: str) -> list[str]:
        return problems(Exchange(method, path, {}, status, {**headers, **extra}, body))

    assert answer("GET", "/v1/organization/projects", 200, page) == []
    assert answer("GET", "/v1/organization/projects", 200, {"object": "list", "data": []})
    admin_key: dict[str, Any] = {
        "object": "organization.admin_api_key",
        "id": "key_a",
        "redacted_value": "x",
        "created_at": "yesterday",
        "expires_at": None,
        "owner": {},
    }
    assert answer("GET", "/v1/organization/admin_api_keys/key_a", 200, admin_key)
    assert answer("GET", "/v1/organization/costs", 418, error("teapot"))  # not listed, not named
    assert answer("GET", "/v1/organization/projects", 404, {"error": {"message": "gone"}})
    assert answer("GET", "/v1/organization/projects", 404, {"error": "gone"})  # not the 403
    assert answer("GET", "/v1/organization/costs", 429, error("slow"), **{"Retry-After": "0.5"})
    assert answer("GET", "/v1/organization/nothing_here", 200, page)
    deleted = {"object": "organization.project.api_key.deleted", "id": "key_a", "deleted": True}
    assert answer("DELETE", "/v1/organization/projects/p/api_keys/key_a", 200, deleted) == []
    assert answer("DELETE", "/v1/organization/projects/p/api_keys/key_a", 200, {"id": "key_a"})
    nested = {"type": "user", "user": {"id": "user_a", "name": "A"}}  # the server's old shape
    flat = {
        "type": "user",
        "object": "organization.user",
        "id": "user_a",
        "name": "A",
        "created_at": 1,
        "role": "owner",
    }
    listing: dict[str, Any] = {**page, "data": [{**admin_key, "created_at": 1, "owner": flat}]}
    assert answer("GET", "/v1/organization/admin_api_keys", 200, listing) == []
    listing["data"][0]["owner"] = nested
    assert answer("GET", "/v1/organization/admin_api_keys", 200, listing)


def test_every_api_call_in_the_product_is_one_the_spec_check_covers() -> None:
    """A new call in src/ must be added to SDK_OPERATIONS and walked above, or this fails."""
    chains = set()
    for source in SRC.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        chains |= {m.group(1) for m in re.finditer(r"\bsdk\.((?:\w+\.)*\w+)\(", text)}
    api_calls = {c for c in chains if c.startswith(("models.", "admin."))}
    assert api_calls, "no SDK call found: the pattern no longer matches the code"
    assert api_calls <= set(SDK_OPERATIONS), sorted(api_calls - set(SDK_OPERATIONS))
    for method, template in SDK_OPERATIONS.values():
        assert method.lower() in spec()["paths"][template], (method, template)
