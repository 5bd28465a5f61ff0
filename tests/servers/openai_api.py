"""A wire-faithful OpenAI API for tests, after ../shared/reference/openai-api.md §6 item 14.

- `GET /v1/models`: Bearer keys; `invalid_api_key` 401 (the message masks the key as the real
  API does); a restricted key's 401 "Missing scopes" with `code: null`; `mismatched_project`
  when an `OpenAI-Project` header names another project; admin keys lack `api.model.read`.
- Admin API (admin keys only; others get the bare-string 403 "Missing scopes"):
  `organization/projects` and `projects/{id}/api_keys` (cursor pages with real `last_id`,
  `owner_project_access`, `include_archived`), `DELETE .../api_keys/{id}`,
  `organization/admin_api_keys`, `organization/costs` (daily buckets, `next_page`;
  `group_by=api_key_id` answers 400 as the live API did in July 2026) and
  `organization/usage/completions`. Both `group_by[]=` and repeated `group_by=` are accepted.
- Every response has `x-request-id: req_<32 hex>`, `openai-version`, `openai-processing-ms`.
- Faults: `inject(path_prefix, status, body, headers)` queues answers (429 with Retry-After,
  5xx, billing 429s); `delay` slows every answer; `drop` closes connections unanswered.
"""

from __future__ import annotations

import json
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


@dataclass
class ApiKey:
    value: str
    id: str
    project_id: str | None  # None for admin keys
    name: str = "key"
    created_at: int = 1_767_225_600  # 2026-01-01
    last_used_at: int | None = None
    restricted: bool = False  # lacks api.model.read
    owner_type: str = "user"
    owner_project_access: str = "active"

    def redacted(self) -> str:
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
    spend: list[Spend] = field(default_factory=list)

    def project(self, project_id: str, name: str = "", archived: bool = False) -> None:
        self.projects[project_id] = {
            "id": project_id, "object": "organization.project", "name": name or project_id,
            "created_at": 1_767_225_600, "archived_at": 1_767_312_000 if archived else None,
            "status": "archived" if archived else "active",
        }  # fmt: skip

    def add_key(self, value: str, project_id: str | None, **options: Any) -> ApiKey:
        key = ApiKey(value, options.pop("id", f"key_{uuid.uuid4().hex[:16]}"), project_id,
                     **options)  # fmt: skip
        self.keys[value] = key
        return key


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.org = Organization()
        self.requests: Counter[str] = Counter()  # "GET /v1/models" -> count
        self.injected: list[tuple[str, int, Any, dict[str, str]]] = []
        self.delay = 0.0
        self.drop = False
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def inject(self, path_prefix: str, status: int, body: Any = None,
               headers: dict[str, str] | None = None, times: int = 1) -> None:  # fmt: skip
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


def error(message: str, type_: str = "invalid_request_error", code: str | None = None
          ) -> dict[str, Any]:  # fmt: skip
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _missing_scopes(scope: str) -> dict[str, Any]:
    return {
        "error": f"You have insufficient permissions for this operation. Missing scopes: "
        f"{scope}. Check that you have the correct role in your organization."
    }


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        content_type = "application/json" if status < 400 else "application/json; charset=utf-8"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        self.send_header("openai-version", "2020-10-01")
        self.send_header("openai-processing-ms", "12")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        server = self.server
        url = urlsplit(self.path)
        query = {k.removesuffix("[]"): v for k, v in parse_qs(url.query).items()}
        with server.lock:
            server.requests[f"{method} {url.path}"] += 1
            injected = next((i for i in server.injected if url.path.startswith(i[0])), None)
            if injected:
                server.injected.remove(injected)
        if server.delay:
            time.sleep(server.delay)
        if server.drop:
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
            message = (f"Incorrect API key provided: {masked(key_value)}. You can find your API "
                       "key at https://platform.openai.com/account/api-keys.")  # fmt: skip
            return self._send(401, error(message, code="invalid_api_key"))
        key.last_used_at = int(time.time())
        path = url.path.rstrip("/")
        if path == "/v1/models":
            return self._models(key)
        if not path.startswith("/v1/organization/"):
            return self._send(404, error(f"Invalid URL ({method} {path})"))
        if key.project_id is not None:
            scope = "api.usage.read" if "/usage/" in path or path.endswith("/costs") else \
                "api.management.read"  # fmt: skip
            return self._send(403, _missing_scopes(scope))
        with server.lock:
            self._admin(method, path.removeprefix("/v1/organization/").split("/"), query)

    def _models(self, key: ApiKey) -> None:
        if key.project_id is None or key.restricted:
            scope = "api.model.read"
            message = (f"You have insufficient permissions for this operation. Missing scopes: "
                       f"{scope}. Check that you have the correct role in your organization "
                       "(Reader, Writer, Owner) and project (Member, Owner), and if you're using "
                       "a restricted API key, that it has the necessary scopes.")  # fmt: skip
            return self._send(401, error(message))
        header = self.headers.get("OpenAI-Project")
        if header and header != key.project_id:
            return self._send(401, error("OpenAI-Project header should match project for API key",
                                         code="mismatched_project"))  # fmt: skip
        self._send(200, {"object": "list", "data": MODELS},
                   {"openai-project": key.project_id})  # fmt: skip

    def _admin(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        org = self.server.org
        if parts == ["projects"]:
            archived = query.get("include_archived", ["false"])[0] == "true"
            items = [p for p in org.projects.values() if archived or p["status"] == "active"]
            return self._cursor(items, query)
        if len(parts) >= 3 and parts[0] == "projects" and parts[2] == "api_keys":
            keys = [k for k in org.keys.values() if k.project_id == parts[1]]
            if len(parts) == 4 and method == "DELETE":
                found = [k for k in keys if k.id == parts[3]]
                if not found:
                    return self._send(404, error(f"No such API key: {parts[3]}"))
                del org.keys[found[0].value]
                return self._send(200, {"object": "organization.project.api_key.deleted",
                                        "id": parts[3], "deleted": True})  # fmt: skip
            access = query.get("owner_project_access", ["active"])[0]
            visible = [k for k in keys if access == "any" or k.owner_project_access == access]
            return self._cursor([self._key_object(k) for k in visible], query)
        if parts == ["admin_api_keys"]:
            admins = [k for k in org.keys.values() if k.project_id is None]
            return self._cursor([{**self._key_object(k), "object": "organization.admin_api_key",
                                  "expires_at": None} for k in admins], query)  # fmt: skip
        if parts == ["costs"]:
            return self._costs(query)
        if parts == ["usage", "completions"]:
            return self._usage(query)
        self._send(404, error(f"Invalid URL ({method} /v1/organization/{'/'.join(parts)})"))

    @staticmethod
    def _key_object(key: ApiKey) -> dict[str, Any]:
        owner_info = {"id": f"user_{key.id[4:12]}", "name": "Ada Lovelace",
                      "created_at": key.created_at, "role": "owner"}  # fmt: skip
        if key.owner_type == "user":
            owner_info["email"] = "ada@example.com"
        return {
            "object": "organization.project.api_key", "redacted_value": key.redacted(),
            "name": key.name, "created_at": key.created_at, "last_used_at": key.last_used_at,
            "id": key.id, "owner_project_access": key.owner_project_access,
            "owner": {"type": key.owner_type, key.owner_type: owner_info},
        }  # fmt: skip

    def _cursor(self, items: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
        limit = min(int(query.get("limit", ["20"])[0]), 100)
        after = query.get("after", [None])[0]
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0)
        page = items[start : start + limit]
        self._send(200, {"object": "list", "data": page,
                         "first_id": page[0]["id"] if page else None,
                         "last_id": page[-1]["id"] if page else None,
                         "has_more": start + limit < len(items)})  # fmt: skip

    def _buckets(self, query: dict[str, list[str]]) -> tuple[list[int], int]:
        start = int(query["start_time"][0])
        start -= start % DAY
        end = int(query.get("end_time", [str(int(time.time()) + DAY)])[0])
        days = list(range(start, end, DAY))
        offset = int(query.get("page", ["0"])[0])
        return days, offset

    def _costs(self, query: dict[str, list[str]]) -> None:
        group_by = query.get("group_by", [])
        if "api_key_id" in group_by:
            return self._send(400, error("Invalid value for 'group_by': 'api_key_id' is not "
                                         "supported.", code="invalid_value"))  # fmt: skip
        projects = set(query.get("project_ids", []))
        days, offset = self._buckets(query)
        limit = min(int(query.get("limit", ["7"])[0]), 180)
        data = []
        for day in days[offset : offset + limit]:
            rows = [s for s in self.server.org.spend if s.day == day
                    and (not projects or s.project_id in projects)]  # fmt: skip
            grouped: dict[str | None, float] = {}
            for row in rows:
                group = row.project_id if "project_id" in group_by else None
                grouped[group] = grouped.get(group, 0.0) + row.amount
            results = [{"object": "organization.costs.result",
                        "amount": {"value": round(v, 6), "currency": "usd"}, "line_item": None,
                        "project_id": g, "quantity": None, "quantity_unit": None}
                       for g, v in grouped.items()]  # fmt: skip
            data.append({"object": "bucket", "start_time": day, "end_time": day + DAY,
                         "results": results})  # fmt: skip
        more = offset + limit < len(days)
        self._send(200, {"object": "page", "data": data, "has_more": more,
                         "next_page": str(offset + limit) if more else None})  # fmt: skip

    def _usage(self, query: dict[str, list[str]]) -> None:
        keys = set(query.get("api_key_ids", []))
        group_by = query.get("group_by", [])
        days, offset = self._buckets(query)
        limit = min(int(query.get("limit", ["7"])[0]), 31)
        data = []
        for day in days[offset : offset + limit]:
            rows = [s for s in self.server.org.spend if s.day == day
                    and (not keys or s.key_id in keys)]  # fmt: skip
            grouped: dict[tuple[str | None, str | None], list[int]] = {}
            for row in rows:
                group = (row.model if "model" in group_by else None,
                         row.key_id if "api_key_id" in group_by else None)  # fmt: skip
                totals = grouped.setdefault(group, [0, 0, 0])
                totals[0] += row.input_tokens
                totals[1] += row.output_tokens
                totals[2] += 1
            results = [{"object": "organization.usage.completions.result",
                        "input_tokens": t[0], "input_cached_tokens": 0, "output_tokens": t[1],
                        "num_model_requests": t[2], "model": g[0], "api_key_id": g[1],
                        "project_id": None, "user_id": None, "batch": None,
                        "service_tier": None} for g, t in grouped.items()]  # fmt: skip
            data.append({"object": "bucket", "start_time": day, "end_time": day + DAY,
                         "results": results})  # fmt: skip
        more = offset + limit < len(days)
        self._send(200, {"object": "page", "data": data, "has_more": more,
                         "next_page": str(offset + limit) if more else None})  # fmt: skip
