"""A wire-faithful OpenAI API for tests, held to OpenAI's published OpenAPI document.

`tests/test_openai_spec.py` validates every response this server gives against the pinned
spec (`tests/spec/openai-openapi.json`); where real traffic is known to differ from the spec
(../shared/reference/openai-api.md), the server follows the observation and that test names
the exception. What it serves:

- `GET /v1/models`: Bearer keys; `invalid_api_key` 401 (the message masks the key as the real
  API does); a restricted key's 401 "Missing scopes" with `code: null`; `mismatched_project`
  when an `OpenAI-Project` header names another project; admin keys lack `api.model.read`.
- The Admin API (admin keys only; other keys get the observed bare-string 403 "Missing
  scopes"): projects; project API keys (list, retrieve, delete: a service-account key cannot
  be deleted there, the spec's 400 says to delete its service account); service accounts
  (list, retrieve, create, which answers the new key's value once, a new key for an account,
  delete, which deletes its keys); admin API keys (list, retrieve, delete); a project's hard
  spend limit (get, set, delete; cents, `USD`, `month`; 404 while none is set [infer]);
  costs (daily buckets, `group_by` project_id / line_item / api_key_id, `api_key_ids`) and
  usage/completions. Cursor pages with real `last_id`; both `group_by[]=` and `group_by=`.
- Bad requests fail as the spec says: a missing or malformed `start_time`, an out-of-range
  `limit`, an unknown `group_by` or `bucket_width` answer 400 with an `ErrorResponse`; an
  unknown project, key or service account answers 404.
- `redacted_value`: project keys in the observed full-length masked form
  (`sk-proj-****…abcd`, or the spec's short form with `Organization.redaction = "short"`);
  admin keys in the spec's short form (`sk-admin...xyz`: nothing else is known of them).
- Every response has `x-request-id: req_<32 hex>`, `openai-version`, `openai-processing-ms`,
  and is recorded in `exchanges` for the spec check; `omit_headers` drops headers the spec does
  not define, to test how the product copes without them.
- `POST /v1/chat/completions` and `POST /v1/responses` (project keys): a fixed reply with
  `usage` (prompt tokens: 4 a message plus a token per 4 characters; output tokens: the reply's
  7, or the request's cap when lower); `stream: true` answers server-sent events with
  chunked transfer encoding: chat chunks (`usage: null` on each, and a last chunk with empty
  `choices` and the usage when `stream_options.include_usage`), then `data: [DONE]`; Responses
  events `response.created`, `response.output_text.delta`, `response.completed` (with usage).
  Each request's JSON body is kept in `bodies` for the tests.
- Faults: `inject(path_prefix, status, body, headers)` queues answers (429 with Retry-After,
  5xx, billing 429s); `delay` slows every answer; `drop` closes connections unanswered, and
  `drops` closes only the next N.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MODELS = [
    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
]
DAY = 86400
REPLY_TOKENS = ["Hello", " from", " the", " test", " server", ".", " Bye"]
CREATED = 1_767_225_600  # 2026-01-01
CURSOR_LIMIT = (1, 100)  # projects, api_keys, service_accounts, admin_api_keys
COSTS_LIMIT = (1, 180)
USAGE_LIMITS = {"1d": (7, 31), "1h": (24, 168), "1m": (60, 1440)}  # default, max buckets
COSTS_GROUPS = {"project_id", "line_item", "api_key_id"}
USAGE_GROUPS = {"project_id", "user_id", "api_key_id", "model", "batch", "service_tier"}


@dataclass
class ApiKey:
    value: str
    id: str
    project_id: str | None  # None for admin keys
    name: str = "key"
    created_at: int = CREATED
    last_used_at: int | None = None
    restricted: bool = False  # lacks api.model.read
    owner_type: str = "user"  # or "service_account"
    owner_project_access: str = "active"
    owner_id: str = ""  # user_… or svc_acct_…, filled in by Organization.add_key

    def redacted(self, form: str) -> str:
        """`masked`: first 8, asterisks, last 4, the key's length (seen in real listings);
        `short`: first 8, `...`, last 3 (the spec's examples, `sk-admin...def`)."""
        if form == "short":
            return f"{self.value[:8]}...{self.value[-3:]}"
        return self.value[:8] + "*" * (len(self.value) - 12) + self.value[-4:]


@dataclass
class Spend:
    day: int  # the bucket's start, Unix seconds
    key_id: str
    project_id: str
    amount: float
    model: str = "gpt-4o-mini"
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Organization:
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)  # by value
    service_accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    spend: list[Spend] = field(default_factory=list)
    spend_limits: dict[str, dict[str, Any]] = field(default_factory=dict)  # by project id
    redaction: str = "masked"  # project keys' redacted_value: "masked" (observed) or "short"
    # Costs grouped by api_key_id: "spec" (supported), "refused" (the live API's 400 of July
    # 2026), or "unfiltered" (grouped, but every key's costs whatever `api_key_ids` asked).
    costs_per_key: str = "spec"

    def project(self, project_id: str, name: str = "", archived: bool = False) -> None:
        self.projects[project_id] = {
            "id": project_id,
            "object": "organization.project",
            "name": name or project_id,
            "created_at": CREATED,
            "archived_at": CREATED + DAY if archived else None,
            "status": "archived" if archived else "active",
        }

    def service_account(self, project_id: str, name: str = "keysentry-bot") -> str:
        account_id = f"svc_acct_{uuid.uuid4().hex[:16]}"
        self.service_accounts[account_id] = {
            "object": "organization.project.service_account",
            "id": account_id,
            "name": name,
            "role": "member",
            "created_at": CREATED,
            "project_id": project_id,  # not on the wire: stripped by _service_account_object
        }
        return account_id

    def add_key(self, value: str, project_id: str | None, **options: Any) -> ApiKey:
        """A key; `owner_type="service_account"` gives it a service account of its own unless
        `owner_id` names one."""
        key_id = options.pop("id", f"key_{uuid.uuid4().hex[:16]}")
        key = ApiKey(value, key_id, project_id, **options)
        if not key.owner_id:
            if key.owner_type == "service_account" and project_id is not None:
                key.owner_id = self.service_account(project_id, f"bot-{key.name}")
            else:
                key.owner_id = f"user_{uuid.uuid4().hex[:16]}"
        self.keys[value] = key
        return key


@dataclass
class Exchange:
    """One answer the server gave, for the spec check."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    headers: dict[str, str]
    body: Any


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.org = Organization()
        self.requests: Counter[str] = Counter()  # "GET /v1/models" -> count
        self.injected: list[tuple[str, int, Any, dict[str, str]]] = []
        self.exchanges: list[Exchange] = []
        self.omit_headers: set[str] = set()  # lower-case names never sent
        self.delay = 0.0
        self.drop = False
        self.drops = 0  # the next N requests get their connection closed unanswered
        self.bodies: list[dict[str, Any]] = []  # generation requests' JSON bodies
        self.lock = threading.RLock()  # _send records under it, inside _admin's hold

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def inject(
        self,
        path_prefix: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        for _ in range(times):
            self.injected.append((path_prefix, status, body, headers or {}))

    def start(self) -> OpenAIServer:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def masked(key: str) -> str:
    return f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 7 else "***"


def error(
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def missing_scopes(scope: str) -> dict[str, Any]:
    """The management plane's refusal: `error` is a bare string [obs], not the spec's object."""
    return {
        "error": f"You have insufficient permissions for this operation. Missing scopes: "
        f"{scope}. Check that you have the correct role in your organization."
    }


class BadRequest(Exception):
    """A request the real API refuses with 400; carries the ErrorResponse body."""

    def __init__(self, message: str, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.body = error(message, code=code, param=param)


class NotFound(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.body = error(message)


def _integer(query: dict[str, list[str]], name: str, default: int | None = None) -> int:
    values = query.get(name)
    if not values:
        if default is None:
            raise BadRequest(
                f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
            )
        return default
    try:
        return int(values[0])
    except ValueError:
        raise BadRequest(
            f"Invalid type for '{name}': expected an integer, but got a string instead.",
            name,
            "invalid_type",
        ) from None


def _limit(query: dict[str, list[str]], default: int, bounds: tuple[int, int]) -> int:
    value = _integer(query, "limit", default)
    low, high = bounds
    if not low <= value <= high:
        raise BadRequest(
            f"Invalid 'limit': integer below minimum value or above maximum value. Expected a "
            f"value between {low} and {high}, but got {value} instead.",
            "limit",
            "integer_out_of_range",
        )
    return value


def _choices(query: dict[str, list[str]], name: str, allowed: set[str]) -> list[str]:
    values = query.get(name, [])
    for value in values:
        if value not in allowed:
            raise BadRequest(
                f"Invalid value for '{name}': '{value}'. Supported values are: "
                f"{', '.join(sorted(allowed))}.",
                name,
            )
    return values


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer
    protocol_version = "HTTP/1.1"
    payload: dict[str, Any]  # a POST's JSON body ({} for other methods)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        content_type = "application/json" if status < 400 else "application/json; charset=utf-8"
        sent = {
            "Content-Type": content_type,
            "Content-Length": str(len(data)),
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-version": "2020-10-01",
            "openai-processing-ms": "12",
            **(headers or {}),
        }
        sent = {k: v for k, v in sent.items() if k.lower() not in self.server.omit_headers}
        self.send_response(status)
        for name, value in sent.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        url = urlsplit(self.path)
        with self.server.lock:
            self.server.exchanges.append(
                Exchange(self.command, url.path, parse_qs(url.query), status, sent, body)
            )

    def do_GET(self) -> None:
        self._handle("GET")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._handle("POST")

    def _body(self) -> dict[str, Any]:
        """The request's JSON object; a body that is not one is the spec's 400."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise BadRequest("We could not parse the JSON body of your request.", "body") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.", "body")
        return body

    def _handle(self, method: str) -> None:
        server = self.server
        url = urlsplit(self.path)
        query = {k.removesuffix("[]"): v for k, v in parse_qs(url.query).items()}
        try:
            self.payload = self._body() if method == "POST" else {}
        except BadRequest as exc:
            return self._send(400, exc.body)
        with server.lock:
            server.requests[f"{method} {url.path}"] += 1
            injected = next((i for i in server.injected if url.path.startswith(i[0])), None)
            if injected:
                server.injected.remove(injected)
            dropped = server.drops > 0
            server.drops -= dropped
        if server.delay:
            time.sleep(server.delay)
        if server.drop or dropped:
            self.close_connection = True
            self.connection.close()
            return
        if injected:
            _, status, body, headers = injected
            return self._send(status, body or error(f"injected {status}"), headers)
        key_value = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        key = server.org.keys.get(key_value)
        if key is None:
            if not key_value:
                return self._send(401, error("You didn't provide an API key."))
            message = (
                f"Incorrect API key provided: {masked(key_value)}. You can find your API "
                "key at https://platform.openai.com/account/api-keys."
            )
            return self._send(401, error(message, code="invalid_api_key"))
        key.last_used_at = int(time.time())
        path = url.path.rstrip("/")
        if path == "/v1/models":
            return self._models(key)
        if path in ("/v1/chat/completions", "/v1/responses") and method == "POST":
            if key.project_id is None:
                return self._send(
                    401,
                    error(
                        "You have insufficient permissions for this "
                        "operation. Missing scopes: model.request."
                    ),
                )
            with server.lock:
                server.bodies.append(self.payload)
            if path == "/v1/chat/completions":
                return self._chat()
            return self._response()
        if not path.startswith("/v1/organization/"):
            return self._send(404, error(f"Invalid URL ({method} {path})"))
        if key.project_id is not None:
            usage = "/usage/" in path or path.endswith("/costs")
            return self._send(
                403, missing_scopes("api.usage.read" if usage else "api.management.read")
            )
        parts = path.removeprefix("/v1/organization/").split("/")
        with server.lock:
            try:
                self._admin(method, parts, query)
            except BadRequest as exc:
                self._send(400, exc.body)
            except NotFound as exc:
                self._send(404, exc.body)

    def _models(self, key: ApiKey) -> None:
        if key.project_id is None or key.restricted:
            message = (
                "You have insufficient permissions for this operation. Missing scopes: "
                "api.model.read. Check that you have the correct role in your organization "
                "(Reader, Writer, Owner) and project (Member, Owner), and if you're using a "
                "restricted API key, that it has the necessary scopes."
            )
            return self._send(401, error(message))
        header = self.headers.get("OpenAI-Project")
        if header and header != key.project_id:
            message = "OpenAI-Project header should match project for API key"
            return self._send(401, error(message, code="mismatched_project"))
        self._send(200, {"object": "list", "data": MODELS}, {"openai-project": key.project_id})

    def _usage_of(self, prompt: str, messages: int, cap_names: tuple[str, ...]) -> tuple[int, int]:
        caps = [v for n in cap_names if isinstance(v := self.payload.get(n), int)]
        output = min([len(REPLY_TOKENS), *caps])
        return 4 * messages + -(-len(prompt) // 4), output

    def _chat(self) -> None:
        messages = self.payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._send(
                400,
                error(
                    "Missing required parameter: 'messages'.",
                    code="missing_required_parameter",
                    param="messages",
                ),
            )
        model = str(self.payload.get("model") or "")
        text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        prompt, output = self._usage_of(
            text, len(messages), ("max_tokens", "max_completion_tokens")
        )
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
        }
        reply = "".join(REPLY_TOKENS[:output])
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_test",
        }
        if self.payload.get("stream") is not True:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": reply,
                "refusal": None,
                "annotations": [],
            }
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            body = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            return self._send(200, body)
        options = self.payload.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[Any] = []
        for index, token in enumerate(REPLY_TOKENS[:output]):
            delta = {"role": "assistant", "content": token} if index == 0 else {"content": token}
            choice = {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}
            events.append({**chunk, "choices": [choice]})
        events.append(
            {
                **chunk,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}],
            }
        )
        if with_usage:
            events = [{**e, "usage": None} for e in events]
            events.append({**chunk, "choices": [], "usage": usage})
        framed: list[tuple[str | None, Any]] = [(None, e) for e in events]
        self._stream([*framed, (None, "[DONE]")])

    def _response(self) -> None:
        model = str(self.payload.get("model") or "")
        given = self.payload.get("input")
        text = given if isinstance(given, str) else json.dumps(given)
        count = len(given) if isinstance(given, list) else 1
        prompt, output = self._usage_of(text, count, ("max_output_tokens",))
        reply = "".join(REPLY_TOKENS[:output])
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + output,
        }
        content = {"type": "output_text", "text": reply, "annotations": [], "logprobs": []}
        message = {
            "type": "message",
            "id": f"msg_{uuid.uuid4().hex}",
            "status": "completed",
            "role": "assistant",
            "content": [content],
        }
        done = {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": self.payload.get("max_output_tokens"),
            "model": model,
            "output": [message],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "temperature": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "metadata": {},
        }
        if self.payload.get("stream") is not True:
            return self._send(200, done)
        started = {k: v for k, v in done.items() if k != "usage"}  # the spec: usage, once known
        started.update(status="in_progress", output=[])
        events: list[tuple[str | None, Any]] = [
            ("response.created", {"type": "response.created", "response": started})
        ]
        item = {**message, "status": "in_progress", "content": []}
        events.append(
            (
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "item": item},
            )
        )
        events.append(
            (
                "response.content_part.added",
                {
                    "type": "response.content_part.added",
                    "item_id": message["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "part": {**content, "text": ""},
                },
            )
        )
        for token in REPLY_TOKENS[:output]:
            events.append(
                (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "item_id": message["id"],
                        "output_index": 0,
                        "content_index": 0,
                        "delta": token,
                        "logprobs": [],
                    },
                )
            )
        events.append(("response.completed", {"type": "response.completed", "response": done}))
        for number, (_, event) in enumerate(events):
            event["sequence_number"] = number
        self._stream(events)

    def _stream(self, events: list[tuple[str | None, Any]]) -> None:
        """Server-sent events in HTTP/1.1 chunks, as the API streams them."""
        self.send_response(200)
        sent = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Transfer-Encoding": "chunked",
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-version": "2020-10-01",
            "openai-processing-ms": "12",
        }
        for name, value in sent.items():
            self.send_header(name, value)
        self.end_headers()
        for event, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            frame = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
            payload = frame.encode()
            self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        url = urlsplit(self.path)
        with self.server.lock:
            self.server.exchanges.append(
                Exchange(
                    self.command, url.path, parse_qs(url.query), 200, sent, [d for _, d in events]
                )
            )

    def _admin(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        if parts == ["projects"] and method == "GET":
            archived = query.get("include_archived", ["false"])[0] == "true"
            projects = self.server.org.projects.values()
            return self._cursor([p for p in projects if archived or p["status"] == "active"], query)
        if parts[:1] == ["projects"] and len(parts) >= 2:
            return self._project(method, parts[1], parts[2:], query)
        if parts[:1] == ["admin_api_keys"]:
            return self._admin_keys(method, parts[1:], query)
        if parts == ["costs"] and method == "GET":
            return self._costs(query)
        if parts == ["usage", "completions"] and method == "GET":
            return self._usage(query)
        raise NotFound(f"Invalid URL ({method} /v1/organization/{'/'.join(parts)})")

    def _project(
        self, method: str, project_id: str, rest: list[str], query: dict[str, list[str]]
    ) -> None:
        org = self.server.org
        project = org.projects.get(project_id)
        if project is None:
            raise NotFound(f"No such project: {project_id}")
        if not rest and method == "GET":
            return self._send(200, project)
        if rest[:1] == ["api_keys"]:
            keys = [k for k in org.keys.values() if k.project_id == project_id]
            if len(rest) == 1 and method == "GET":
                access = _choices(query, "owner_project_access", {"active", "inactive", "any"})
                wanted = access[0] if access else "active"
                shown = [k for k in keys if wanted == "any" or k.owner_project_access == wanted]
                return self._cursor([self._key_object(k) for k in shown], query)
            found = [k for k in keys if len(rest) == 2 and k.id == rest[1]]
            if not found:
                raise NotFound(f"No such API key: {rest[-1]}")
            if method == "GET":
                return self._send(200, self._key_object(found[0]))
            if method == "DELETE":
                return self._delete_key(found[0])
        if rest == ["spend_limit"]:
            return self._spend_limit(method, project)
        if rest[:1] == ["service_accounts"]:
            accounts = [a for a in org.service_accounts.values() if a["project_id"] == project_id]
            if len(rest) == 1 and method == "GET":
                return self._cursor([_service_account_object(a) for a in accounts], query)
            if len(rest) == 1 and method == "POST":
                return self._create_service_account(project)
            found_accounts = [a for a in accounts if len(rest) >= 2 and a["id"] == rest[1]]
            if not found_accounts:
                raise NotFound(f"No such service account: {rest[-1]}")
            account = found_accounts[0]
            if rest[2:] == ["api_keys"] and method == "POST":
                name = str(self.payload.get("name") or "Secret Key")
                return self._send(200, self._new_key(account, name))
            if len(rest) > 2:
                raise NotFound(f"Invalid URL ({method} …/service_accounts/{account['id']}/…)")
            if method == "GET":
                return self._send(200, _service_account_object(account))
            if method == "DELETE":
                del org.service_accounts[account["id"]]
                for key in [k for k in org.keys.values() if k.owner_id == account["id"]]:
                    del org.keys[key.value]
                deleted = "organization.project.service_account.deleted"
                return self._send(200, {"object": deleted, "id": account["id"], "deleted": True})
        raise NotFound(f"Invalid URL ({method} /v1/organization/projects/{project_id}/…)")

    def _create_service_account(self, project: dict[str, Any]) -> None:
        """The spec: the new account, and (unless `create_service_account_only`) its API key
        with the unredacted value, the only time the value is ever answered."""
        if project["status"] == "archived":
            raise BadRequest(f"Project {project['id']} is archived.", "project_id")
        name = self.payload.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(
                "Missing required parameter: 'name'.", "name", "missing_required_parameter"
            )
        only = self.payload.get("create_service_account_only") is True
        org = self.server.org
        account = org.service_accounts[org.service_account(project["id"], name)]
        account["role"] = "none" if only else "member"
        new_key = None if only else self._new_key(account, "Secret Key")
        self._send(200, {**_service_account_object(account), "api_key": new_key})

    def _new_key(self, account: dict[str, Any], name: str) -> dict[str, Any]:
        """A new key for a service account, built at run time (no key literal anywhere)."""
        from keygen import key_of
        from keysentry.scanner.keys import KeyKind

        value = key_of(KeyKind.SERVICE_ACCOUNT, random.Random(uuid.uuid4().int)).key
        key = self.server.org.add_key(
            value,
            account["project_id"],
            name=name,
            created_at=int(time.time()),
            owner_type="service_account",
            owner_id=account["id"],
        )
        return {
            "object": "organization.project.service_account.api_key",
            "value": value,
            "name": name,
            "created_at": key.created_at,
            "id": key.id,
        }

    def _spend_limit(self, method: str, project: dict[str, Any]) -> None:
        limits = self.server.org.spend_limits
        if method == "POST":
            amount = self.payload.get("threshold_amount")
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
                raise BadRequest(
                    "Invalid 'threshold_amount': an integer of at least 1 (cents) is required.",
                    "threshold_amount",
                )
            for name, only in (("currency", "USD"), ("interval", "month")):
                if self.payload.get(name) != only:
                    raise BadRequest(
                        f"Invalid value for '{name}': only '{only}' is supported.", name
                    )
            limits[project["id"]] = {
                "object": "project.spend_limit",
                "threshold_amount": amount,
                "currency": "USD",
                "interval": "month",
                "enforcement": {"status": "enforcing"},
            }
            return self._send(200, limits[project["id"]])
        if project["id"] not in limits:
            raise NotFound(f"No hard spend limit is set for project {project['id']}.")
        if method == "GET":
            return self._send(200, limits[project["id"]])
        if method == "DELETE":
            del limits[project["id"]]
            return self._send(200, {"object": "project.spend_limit.deleted", "deleted": True})
        raise NotFound(f"Invalid URL ({method} /v1/organization/projects/{project['id']}/…)")

    def _delete_key(self, key: ApiKey) -> None:
        """The spec: "Returns confirmation of the key deletion, or an error if the key belonged
        to a service account" (a 400 ErrorResponse; the message is ours, none was captured)."""
        if key.owner_type == "service_account":
            raise BadRequest(
                f"API key {key.id} belongs to service account {key.owner_id}; delete the "
                "service account to revoke it.",
                "api_key_id",
            )
        del self.server.org.keys[key.value]
        deleted = "organization.project.api_key.deleted"
        self._send(200, {"object": deleted, "id": key.id, "deleted": True})

    def _admin_keys(self, method: str, rest: list[str], query: dict[str, list[str]]) -> None:
        org = self.server.org
        admins = [k for k in org.keys.values() if k.project_id is None]
        if not rest and method == "GET":
            return self._cursor([self._admin_key_object(k) for k in admins], query)
        found = [k for k in admins if len(rest) == 1 and k.id == rest[0]]
        if not found:
            raise NotFound(f"No such admin API key: {rest[-1] if rest else ''}")
        if method == "GET":
            return self._send(200, self._admin_key_object(found[0]))
        if method == "DELETE":
            del org.keys[found[0].value]
            deleted = "organization.admin_api_key.deleted"
            return self._send(200, {"object": deleted, "id": found[0].id, "deleted": True})
        raise NotFound(f"Invalid URL ({method} /v1/organization/admin_api_keys/{rest[0]})")

    def _key_object(self, key: ApiKey) -> dict[str, Any]:
        if key.owner_type == "service_account":
            account = self.server.org.service_accounts.get(key.owner_id, {})
            owner_info: dict[str, Any] = {
                "id": key.owner_id,
                "name": account.get("name", "bot"),
                "created_at": account.get("created_at", key.created_at),
                "role": account.get("role", "member"),
            }
        else:
            owner_info = {
                "id": key.owner_id,
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "created_at": key.created_at,
                "role": "owner",
            }
        return {
            "object": "organization.project.api_key",
            "redacted_value": key.redacted(self.server.org.redaction),
            "name": key.name,
            "created_at": key.created_at,
            "last_used_at": key.last_used_at,
            "id": key.id,
            "owner_project_access": key.owner_project_access,
            "owner": {"type": key.owner_type, key.owner_type: owner_info},
        }

    @staticmethod
    def _admin_key_object(key: ApiKey) -> dict[str, Any]:
        """The spec's AdminApiKey: a flat owner (`type`, `object`, `id`, `name`, …)."""
        return {
            "object": "organization.admin_api_key",
            "id": key.id,
            "name": key.name,
            "redacted_value": key.redacted("short"),
            "created_at": key.created_at,
            "expires_at": None,
            "last_used_at": key.last_used_at,
            "owner": {
                "type": "user",
                "object": "organization.user",
                "id": key.owner_id,
                "name": "Ada Lovelace",
                "created_at": key.created_at,
                "role": "owner",
            },
        }

    def _cursor(self, items: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
        limit = _limit(query, 20, CURSOR_LIMIT)
        after = query.get("after", [None])[0]
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0)
        page = items[start : start + limit]
        body = {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + limit < len(items),
        }
        self._send(200, body)

    def _days(self, query: dict[str, list[str]]) -> tuple[list[int], int]:
        """The UTC days from start_time (required) to end_time, and the page's offset."""
        start = _integer(query, "start_time")
        start -= start % DAY
        end = _integer(query, "end_time", int(time.time()) + DAY)
        offset = _integer(query, "page", 0)
        return list(range(start, end, DAY)), offset

    def _page(self, data: list[dict[str, Any]], days: list[int], offset: int, limit: int) -> None:
        more = offset + limit < len(days)
        next_page = str(offset + limit) if more else None
        self._send(200, {"object": "page", "data": data, "has_more": more, "next_page": next_page})

    def _costs(self, query: dict[str, list[str]]) -> None:
        org = self.server.org
        group_by = _choices(query, "group_by", COSTS_GROUPS)
        if query.get("bucket_width", ["1d"]) != ["1d"]:
            raise BadRequest(
                "Invalid value for 'bucket_width': only '1d' is supported.", "bucket_width"
            )
        if "api_key_id" in group_by and org.costs_per_key == "refused":
            raise BadRequest(
                "Invalid value for 'group_by': 'api_key_id' is not supported.", "group_by"
            )
        days, offset = self._days(query)
        limit = _limit(query, 7, COSTS_LIMIT)
        projects = set(query.get("project_ids", []))
        keys = set(query.get("api_key_ids", [])) if org.costs_per_key != "unfiltered" else set()
        data = []
        for day in days[offset : offset + limit]:
            grouped: dict[tuple[str | None, str | None], float] = {}
            for row in org.spend:
                if row.day != day or (projects and row.project_id not in projects):
                    continue
                if keys and row.key_id not in keys:
                    continue
                group = (
                    row.project_id if "project_id" in group_by else None,
                    row.key_id if "api_key_id" in group_by else None,
                )
                grouped[group] = grouped.get(group, 0.0) + row.amount
            results = [
                {
                    "object": "organization.costs.result",
                    "amount": {"value": round(value, 6), "currency": "usd"},
                    "line_item": None,
                    "project_id": project,
                    "api_key_id": key_id,
                    "quantity": None,
                    "quantity_unit": None,
                }
                for (project, key_id), value in grouped.items()
            ]
            data.append(
                {"object": "bucket", "start_time": day, "end_time": day + DAY, "results": results}
            )
        self._page(data, days, offset, limit)

    def _usage(self, query: dict[str, list[str]]) -> None:
        width = query.get("bucket_width", ["1d"])[0]
        if width not in USAGE_LIMITS:
            raise BadRequest(f"Invalid value for 'bucket_width': '{width}'.", "bucket_width")
        if width != "1d":
            raise BadRequest("This test server serves daily buckets only.", "bucket_width")
        group_by = _choices(query, "group_by", USAGE_GROUPS)
        days, offset = self._days(query)
        default, most = USAGE_LIMITS[width]
        limit = _limit(query, default, (1, most))
        keys = set(query.get("api_key_ids", []))
        data = []
        for day in days[offset : offset + limit]:
            rows = [
                s for s in self.server.org.spend if s.day == day and (not keys or s.key_id in keys)
            ]
            grouped: dict[tuple[str | None, str | None], list[int]] = {}
            for row in rows:
                group = (
                    row.model if "model" in group_by else None,
                    row.key_id if "api_key_id" in group_by else None,
                )
                totals = grouped.setdefault(group, [0, 0, 0])
                totals[0] += row.input_tokens
                totals[1] += row.output_tokens
                totals[2] += 1
            results = [
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": t[0],
                    "input_cached_tokens": 0,
                    "output_tokens": t[1],
                    "num_model_requests": t[2],
                    "model": g[0],
                    "api_key_id": g[1],
                    "project_id": None,
                    "user_id": None,
                    "batch": None,
                    "service_tier": None,
                }
                for g, t in grouped.items()
            ]
            data.append(
                {"object": "bucket", "start_time": day, "end_time": day + DAY, "results": results}
            )
        self._page(data, days, offset, limit)


def _service_account_object(account: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in account.items() if k != "project_id"}
