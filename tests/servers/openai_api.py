"""A wire-faithful OpenAI API for tests (../shared/reference/openai-api.md).

So far: `GET /v1/models` with Bearer authentication, the `invalid_api_key` 401 envelope (its
message masks the key as the real API does), and the response headers the SDK reads
(`x-request-id`, `openai-version`, `openai-processing-ms`).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = [
    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
]


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.keys: set[str] = set()  # the live keys
        self.requests: Counter[str] = Counter()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> OpenAIServer:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def masked(key: str) -> str:
    return f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 7 else "***"


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: dict[str, Any], content_type: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        self.send_header("openai-version", "2020-10-01")
        self.send_header("openai-processing-ms", "12")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.requests[f"GET {self.path}"] += 1
        key = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if key not in self.server.keys:
            message = (f"Incorrect API key provided: {masked(key)}. You can find your API key "
                       "at https://platform.openai.com/account/api-keys.")  # fmt: skip
            error = {"message": message, "type": "invalid_request_error", "param": None,
                     "code": "invalid_api_key"}  # fmt: skip
            return self._send(401, {"error": error}, "application/json; charset=utf-8")
        if self.path.rstrip("/") == "/v1/models":
            return self._send(200, {"object": "list", "data": MODELS}, "application/json")
        not_found = {"message": f"Invalid URL (GET {self.path})", "type": "invalid_request_error",
                     "param": None, "code": None}  # fmt: skip
        self._send(404, {"error": not_found}, "application/json; charset=utf-8")
