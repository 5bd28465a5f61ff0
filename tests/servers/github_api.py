"""A local server that answers like the GitHub REST API for listing repositories, so that the
real PyGithub client lists from it.

What it serves, as docs.github.com describes the REST API (2022-11-28):

- `GET /users/{user}` and `GET /orgs/{org}`: the account (login, id, type, url, repos_url).
- `GET /orgs/{org}/repos?type=all&per_page=N&page=P` and `GET /users/{user}/repos?type=owner`:
  a JSON array of repository objects (id, name, full_name, owner, private, fork, archived,
  clone_url, html_url, default_branch, url), in pages; `Link` carries `next`, `last`, `first`
  and `prev` relations as GitHub writes them (absolute URLs, `rel="..."`); an unknown org or
  user answers 404 `{"message": "Not Found", "documentation_url": ...}`.
- Every answer has `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-used`,
  `x-ratelimit-reset` (epoch seconds) and `x-ratelimit-resource: core`; once `remaining`
  reaches 0 the next request answers 403 "API rate limit exceeded" until `reset`, when the
  budget refills.
- `secondary_limit(times)`: the next requests answer the secondary rate limit: 403 with
  `retry-after` and the message "You have exceeded a secondary rate limit".
- `page_cap`: the largest page it serves (GitHub's is 100), so that a few repositories span
  pages whatever `per_page` the client asks: only the `Link` header finds the rest.
- `prefix`: served under a path prefix, as GitHub Enterprise Server's `/api/v3`.
- `requests` records (method, path with query, authorization header present) of every call.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

DOCS = "https://docs.github.com/rest"


@dataclass
class Repo:
    owner: str
    name: str
    clone_url: str
    fork: bool = False
    archived: bool = False
    private: bool = False
    id: int = 0


@dataclass
class GitHubServer:
    prefix: str = ""
    limit: int = 5000
    reset_after: float = 1.0  # seconds until an exhausted budget refills
    page_cap: int = 100  # GitHub's largest page; smaller makes a small org span pages
    repos: list[Repo] = field(default_factory=list)
    users: set[str] = field(default_factory=set)  # owners that are users, not organisations
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    remaining: int = 5000
    reset_at: float = 0.0
    secondary: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _http: ThreadingHTTPServer | None = None

    def add(self, owner: str, name: str, clone_url: str, **flags: Any) -> Repo:
        repo = Repo(owner, name, clone_url, id=len(self.repos) + 1, **flags)
        self.repos.append(repo)
        return repo

    def secondary_limit(self, times: int = 1) -> None:
        self.secondary += times

    @property
    def base_url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}{self.prefix}"

    def start(self) -> GitHubServer:
        server = self

        class Handler(_Handler):
            github = server

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.remaining, self.reset_at = self.limit, time.time() + self.reset_after
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def page_requests(self, owner: str) -> list[str]:
        return [p for m, p, _ in self.requests if f"/{owner}/repos" in p]


def repository_object(repo: Repo, api: str) -> dict[str, Any]:
    owner_type = "Organization"
    return {
        "id": repo.id,
        "node_id": f"R_{repo.id:08d}",
        "name": repo.name,
        "full_name": f"{repo.owner}/{repo.name}",
        "owner": {"login": repo.owner, "id": 1000 + repo.id, "type": owner_type},
        "private": repo.private,
        "html_url": f"https://github.example/{repo.owner}/{repo.name}",
        "description": None,
        "fork": repo.fork,
        "url": f"{api}/repos/{repo.owner}/{repo.name}",
        "clone_url": repo.clone_url,
        "default_branch": "main",
        "archived": repo.archived,
        "disabled": False,
        "visibility": "private" if repo.private else "public",
    }


class _Handler(BaseHTTPRequestHandler):
    github: GitHubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        github = self.github
        url = urlsplit(self.path)
        with github.lock:
            github.requests.append(("GET", self.path, "authorization" in self.headers))
            now = time.time()
            if now >= github.reset_at:
                github.remaining, github.reset_at = github.limit, now + github.reset_after
            if github.secondary:
                github.secondary -= 1
                return self._send(
                    403,
                    {
                        "message": "You have exceeded a secondary rate limit. Please wait a "
                        "few minutes before you try again.",
                        "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
                    },
                    {"retry-after": "1"},
                )
            if github.remaining <= 0:
                return self._send(
                    403,
                    {
                        "message": "API rate limit exceeded for 127.0.0.1.",
                        "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
                    },
                )
            github.remaining -= 1
        path = url.path.removeprefix(github.prefix)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] in ("orgs", "users") and parts[2] == "repos":
            return self._list(parts[0], parts[1], parse_qs(url.query))
        if len(parts) == 2 and parts[0] in ("orgs", "users"):
            return self._account(parts[0], parts[1])
        self._send(404, {"message": "Not Found", "documentation_url": DOCS})

    def _account(self, what: str, login: str) -> None:
        """GET /users/{login} or /orgs/{org}: the account, as much of it as listing needs."""
        github = self.github
        is_user = login in github.users
        known = is_user or any(r.owner == login for r in github.repos)
        if not known or (what == "orgs") == is_user:
            return self._send(404, {"message": "Not Found", "documentation_url": DOCS})
        api = github.base_url
        body = {
            "login": login,
            "id": abs(hash(login)) % 10**8,
            "type": "User" if is_user else "Organization",
            "url": f"{api}/{what}/{login}",
            "repos_url": f"{api}/{what}/{login}/repos",
        }
        self._send(200, body)

    def _list(self, what: str, owner: str, query: dict[str, list[str]]) -> None:
        github = self.github
        is_user = owner in github.users
        owned = [r for r in github.repos if r.owner == owner]
        if (what == "orgs") == is_user or (not owned and owner not in github.users):
            return self._send(404, {"message": "Not Found", "documentation_url": DOCS})
        kind = (query.get("type") or ["all"])[0]
        if kind not in ("all", "public", "private", "forks", "sources", "member", "owner"):
            return self._send(422, {"message": "Validation Failed", "documentation_url": DOCS})
        per_page = max(1, min(github.page_cap, int((query.get("per_page") or ["30"])[0])))
        page = max(1, int((query.get("page") or ["1"])[0]))
        last = max(1, -(-len(owned) // per_page))
        items = owned[(page - 1) * per_page : page * per_page]
        api = github.base_url
        links = []

        def link(number: int, rel: str) -> str:
            params = {**{k: v[0] for k, v in query.items()}, "page": str(number)}
            return f'<{api}/{what}/{owner}/repos?{urlencode(params)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"link": ", ".join(links)} if links else {}
        self._send(200, [repository_object(r, api) for r in items], headers)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        github = self.github
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-github-api-version-selected", "2022-11-28")
        self.send_header("x-ratelimit-limit", str(github.limit))
        self.send_header("x-ratelimit-remaining", str(max(github.remaining, 0)))
        self.send_header("x-ratelimit-used", str(github.limit - max(github.remaining, 0)))
        self.send_header("x-ratelimit-reset", str(int(github.reset_at + 0.999)))
        self.send_header("x-ratelimit-resource", "core")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
