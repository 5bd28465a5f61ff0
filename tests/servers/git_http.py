"""Bare repositories served over smart HTTP on 127.0.0.1 by git's own `git http-backend`,
run as a CGI program for each request, the way a web server runs it.

`stall(name, seconds)` makes the next request for a repository wait first (once): a test can
kill the worker that is cloning it mid-task. `hits` counts requests per repository.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class GitHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.stalls: dict[str, float] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, relative: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{relative}"

    def stall(self, relative: str, seconds: float) -> None:
        with self.lock:
            self.stalls[relative] = seconds

    def start(self) -> GitHttpServer:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: GitHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _cgi(self) -> None:
        url = urlsplit(self.path)
        repo = url.path.lstrip("/").split(".git/")[0] + ".git"
        with self.server.lock:
            self.server.hits[repo] += 1
            delay = self.server.stalls.pop(repo, 0.0)
        if delay:
            time.sleep(delay)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.server.root),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": self.headers.get("git-protocol", ""),
        }
        if self.headers.get("content-encoding"):
            environment["HTTP_CONTENT_ENCODING"] = self.headers["content-encoding"]
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=environment, capture_output=True, check=False
        )
        separator = b"\r\n\r\n" if b"\r\n\r\n" in done.stdout else b"\n\n"
        head, _, payload = done.stdout.partition(separator)
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
