"""A wire-faithful Azure Key Vault data plane (secrets), for tests.

Faithful to ../shared/reference/providers.md §2: `api-version` required on every call; a 401
with the bearer challenge whenever `Authorization` is missing; SecretBundle and SecretItem
shapes (epoch-second timestamps, ids that carry name and version); names `[0-9A-Za-z-]`,
compared case-insensitively; a new version per PUT; soft delete with `recoveryId`, 409
`ObjectIsDeletedButRecoverable` on PUT of a deleted name, recover and purge; paged lists with
`nextLink`; errors as `{"error": {"code", "message"}}`. Faults for tests: tokens to refuse
(403 ForbiddenByRbac), statuses to answer next, a delay.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHALLENGE = (
    'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000",'
    ' resource="https://vault.azure.net"'
)
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}\Z")
PAGE = 2  # items per page, so that paging is exercised


class KeyVaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, vault_url: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.vault_url = vault_url.rstrip("/")
        self.secrets: dict[str, dict[str, Any]] = {}  # lower name -> {name, versions: [...]}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.refused_tokens: set[str] = set()
        self.next_statuses: list[int] = []
        self.delay = 0.0
        self.requests: Counter[str] = Counter()  # "GET /secrets/x" -> count (authorized ones)
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> KeyVaultServer:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def bundle(self, entry: dict[str, Any], version: dict[str, Any]) -> dict[str, Any]:
        bundle = {
            "value": version["value"],
            "id": f"{self.vault_url}/secrets/{entry['name']}/{version['id']}",
            "attributes": self._attributes(version),
        }
        return {**bundle, **self._optional(version)}

    def item(
        self, entry: dict[str, Any], version: dict[str, Any], versioned: bool
    ) -> dict[str, Any]:
        suffix = f"/{version['id']}" if versioned else ""
        item = {
            "id": f"{self.vault_url}/secrets/{entry['name']}{suffix}",
            "attributes": self._attributes(version),
        }
        return {**item, **self._optional(version)}

    @staticmethod
    def _optional(version: dict[str, Any]) -> dict[str, Any]:
        # A real vault leaves out contentType and tags that were never set (the SDK's recordings).
        return {k: version[k] for k in ("contentType", "tags") if version.get(k)}

    @staticmethod
    def _attributes(version: dict[str, Any]) -> dict[str, Any]:
        given = version.get("attributes") or {}  # enabled, exp, nbf as PUT gave them
        return {
            "enabled": True,
            **given,
            "created": version["created"],
            "updated": version.get("updated", version["created"]),
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }


class _Handler(BaseHTTPRequestHandler):
    server: KeyVaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if inner:
            error["innererror"] = {"code": inner}
        self._send(status, {"error": error})

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if "api-version" not in query:
            return self._error(400, "BadParameter", "The api-version query parameter is missing")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self._send(
                401,
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer or PoP token.",
                    }
                },
                {"WWW-Authenticate": CHALLENGE},
            )
        if auth.removeprefix("Bearer ") in self.server.refused_tokens:
            return self._error(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.",
                "ForbiddenByRbac",
            )
        parts = [p for p in url.path.split("/") if p]
        with self.server.lock:
            self.server.requests[f"{method} /{'/'.join(parts)}"] += 1
            status = self.server.next_statuses.pop(0) if self.server.next_statuses else 0
        if self.server.delay:
            time.sleep(self.server.delay)
        if status:
            return self._error(
                status, "InternalError" if status >= 500 else "Throttled", f"injected {status}"
            )
        body = json.loads(raw) if raw else {}
        with self.server.lock:
            self._route(method, parts, body, query)

    def _route(
        self, method: str, parts: list[str], body: dict[str, Any], query: dict[str, list[str]]
    ) -> None:
        server = self.server
        if parts[:1] == ["secrets"] and len(parts) == 1 and method == "GET":
            entries = [(e, e["versions"][-1]) for e in server.secrets.values()]
            return self._page([server.item(e, v, False) for e, v in entries], query, "secrets")
        if parts[:1] == ["deletedsecrets"]:
            return self._deleted(method, parts, query)
        if parts[:1] != ["secrets"] or len(parts) < 2:
            return self._error(404, "NotFound", "no such route")
        name = parts[1]
        if not _NAME.match(name):
            return self._error(400, "BadParameter", f"The secret name {name!r} is invalid")
        key = name.lower()
        entry = server.secrets.get(key)
        if method == "PUT" and len(parts) == 2:
            if key in server.deleted:
                return self._error(
                    409,
                    "Conflict",
                    f"Secret {name} is currently in a deleted but "
                    "recoverable state, and its name cannot be reused; in this "
                    "state, the secret can only be recovered or purged.",
                    "ObjectIsDeletedButRecoverable",
                )
            entry = server.secrets.setdefault(key, {"name": name, "versions": []})
            given = body.get("attributes") or {}
            version = {
                "id": uuid.uuid4().hex,
                "value": body.get("value", ""),
                "tags": body.get("tags"),
                "contentType": body.get("contentType"),
                "attributes": {k: given[k] for k in ("enabled", "exp", "nbf") if k in given},
                "created": int(time.time()),
            }
            entry["versions"].append(version)
            return self._send(200, server.bundle(entry, version))
        if entry is None and method == "GET" and parts[2:] == ["versions"]:
            return self._page([], query, f"secrets/{name}/versions")  # as a real vault answers
        if entry is None:
            return self._error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault.",
            )
        if method == "GET" and len(parts) == 3 and parts[2] == "versions":
            items = [server.item(entry, v, True) for v in entry["versions"]]
            return self._page(items, query, f"secrets/{name}/versions")
        if method == "GET" and len(parts) in (2, 3):
            wanted = parts[2] if len(parts) == 3 else ""
            found = (
                [v for v in entry["versions"] if v["id"] == wanted]
                if wanted
                else entry["versions"][-1:]
            )
            if not found:
                return self._error(404, "SecretNotFound", f"version {wanted} of {name} not found")
            return self._send(200, server.bundle(entry, found[0]))
        if method == "PATCH" and len(parts) in (2, 3):  # `/secrets/name/`: the latest version
            found = (
                [v for v in entry["versions"] if v["id"] == parts[2]]
                if len(parts) == 3
                else entry["versions"][-1:]
            )
            if not found:
                return self._error(404, "SecretNotFound", "no such version")
            found[0].update({k: body[k] for k in ("tags", "contentType") if k in body})
            found[0]["updated"] = int(time.time())
            bundle = server.bundle(entry, found[0])
            bundle.pop("value")
            return self._send(200, bundle)
        if method == "DELETE" and len(parts) == 2:
            server.deleted[key] = server.secrets.pop(key)
            return self._send(200, self._deleted_bundle(server.deleted[key]))
        return self._error(405, "MethodNotAllowed", f"{method} not supported here")

    def _deleted(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        server = self.server
        if len(parts) == 1 and method == "GET":
            items = [self._deleted_bundle(e) for e in server.deleted.values()]
            for item in items:  # a listing's item names the secret, not a version
                item["id"] = item["id"].rsplit("/", 1)[0]
            return self._page(items, query, "deletedsecrets")
        key = parts[1].lower()
        entry = server.deleted.get(key)
        if entry is None:
            return self._error(404, "SecretNotFound", f"Deleted Secret not found: {parts[1]}")
        if method == "GET" and len(parts) == 2:
            return self._send(200, self._deleted_bundle(entry))
        if method == "POST" and parts[2:] == ["recover"]:
            server.secrets[key] = server.deleted.pop(key)
            return self._send(200, server.bundle(entry, entry["versions"][-1]))
        if method == "DELETE" and len(parts) == 2:
            del server.deleted[key]
            return self._send(204)
        return self._error(405, "MethodNotAllowed", f"{method} not supported here")

    def _deleted_bundle(self, entry: dict[str, Any]) -> dict[str, Any]:
        bundle = self.server.bundle(entry, entry["versions"][-1])
        bundle.pop("value")  # a deleted secret's value is not returned
        now = int(time.time())
        bundle.update(
            {
                "recoveryId": f"{self.server.vault_url}/deletedsecrets/{entry['name']}",
                "deletedDate": now,
                "scheduledPurgeDate": now + 90 * 86400,
            }
        )
        return bundle

    def _page(self, items: list[dict[str, Any]], query: dict[str, list[str]], path: str) -> None:
        start = int(query.get("$skiptoken", ["0"])[0])
        size = min(int(query.get("maxresults", [str(PAGE)])[0]), PAGE)
        page = items[start : start + size]
        following = None
        if start + size < len(items):
            api = query["api-version"][0]
            following = (
                f"{self.server.vault_url}/{path}?api-version={api}"
                f"&$skiptoken={start + size}&maxresults={size}"
            )
        self._send(200, {"value": page, "nextLink": following})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._handle("POST")
