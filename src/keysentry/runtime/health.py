"""`/health/openai` for web apps: one report, served by ready handlers for FastAPI/Starlette,
Flask, Django and plain WSGI.

The report (JSON) holds the environment; where its key comes from and its version (never the
key); liveness (one unbilled `GET /models`, through the host's circuit breaker, reused for
`health_cache_seconds` so a probe hitting the endpoint every second costs one request per
interval); the breaker's state; the token budget left in the window; spend against the alert
threshold.

The status code, by one rule: **503** when the key cannot be loaded, when the API is down for
this key (refused, unreachable, or the breaker open), or when the token budget is spent and
calls are being refused (`budget_mode = "refuse"`); **200** otherwise: a rate-limited key
("degraded") and spend over the alert threshold are reported in the body but do not take the
app out of rotation, since neither is cured by restarting or re-routing it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from keysentry.errors import KeysentryError
from keysentry.loader import DEFAULT_NAME, fetch
from keysentry.runtime.budget import budget_for
from keysentry.runtime.client import guard_for
from keysentry.safety import escape_control, scrub

PATH = "/health/openai"


class HealthCheck:
    """The report for one environment, its liveness cached."""

    def __init__(self, env: str | None = None, *, name: str = DEFAULT_NAME, **options: Any) -> None:
        self.env, self.name, self.options = env, name, options
        self._lock = threading.Lock()
        self._live: tuple[float, dict[str, Any]] | None = None

    def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body), by the rule in the module docstring."""
        guard = guard_for(self.env, name=self.name, **self.options)
        body: dict[str, Any] = {"env": self.env}
        try:
            fetched = fetch(self.name, env=self.env)
        except KeysentryError as exc:
            body["key"] = {"error": escape_control(scrub(str(exc)))[:300]}
            body["status"] = "down"
            return 503, body
        body["key"] = {"source": scrub(fetched.source), "version": fetched.version}
        body["liveness"] = self._liveness(fetched.secret, guard.settings.health_cache_seconds)
        body["breaker"] = guard.breaker.state
        budget = budget_for(self.env, guard.settings).status()
        body["budget"] = budget
        over = budget["spend_threshold_usd"] is not None and (
            budget["spend_usd"] >= budget["spend_threshold_usd"]
        )
        body["spend_over_threshold"] = over
        spent = budget["tokens_left"] == 0 and guard.settings.budget_mode == "refuse"
        down = body["liveness"]["status"] == "down" or spent
        body["status"] = "down" if down else body["liveness"]["status"]
        return (503 if down else 200), body

    def _liveness(self, key: Any, ttl: float) -> dict[str, Any]:
        from keysentry.verify.client import health

        with self._lock:
            if self._live is not None and time.monotonic() - self._live[0] < ttl:
                return {**self._live[1], "cached": True}
        base_url = self.options.get("base_url")
        result = health(key, base_url=str(base_url) if base_url else None)
        result["checked_at"] = int(time.time())
        with self._lock:
            self._live = (time.monotonic(), result)
        return {**result, "cached": False}


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True).encode()


def wsgi_app(env: str | None = None, **options: Any) -> Callable[..., Iterable[bytes]]:
    """A plain WSGI app answering the report (mount it at /health/openai)."""
    check = HealthCheck(env, **options)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, body = check.report()
        data = _json(body)
        reason = "OK" if status == 200 else "Service Unavailable"
        start_response(
            f"{status} {reason}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [data]

    return app


def flask_blueprint(env: str | None = None, path: str = PATH, **options: Any) -> Any:
    """A Flask blueprint with GET `path`: `app.register_blueprint(flask_blueprint("prod"))`."""
    from flask import Blueprint, Response

    check = HealthCheck(env, **options)
    blueprint = Blueprint("keysentry_health", __name__)

    @blueprint.get(path)
    def health() -> Any:
        status, body = check.report()
        return Response(
            _json(body),
            status=status,
            mimetype="application/json",
            headers={"Cache-Control": "no-store"},
        )

    return blueprint


def starlette_route(env: str | None = None, path: str = PATH, **options: Any) -> Any:
    """A Starlette route (FastAPI apps too: `app.router.routes.append(...)`, or use
    `fastapi_router`). The check runs in a worker thread: it may call the API."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    check = HealthCheck(env, **options)

    async def health(request: Request) -> Response:
        status, body = await run_in_threadpool(check.report)
        return Response(
            _json(body),
            status_code=status,
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    return Route(path, health, methods=["GET"])


def fastapi_router(env: str | None = None, path: str = PATH, **options: Any) -> Any:
    """A FastAPI router: `app.include_router(fastapi_router("production"))`."""
    from fastapi import APIRouter

    router = APIRouter()
    router.routes.append(starlette_route(env, path, **options))
    return router


def django_view(env: str | None = None, **options: Any) -> Callable[..., Any]:
    """A Django view: `path("health/openai", django_view("production"))` in urlpatterns."""
    check = HealthCheck(env, **options)

    def health(request: Any) -> Any:
        from django.http import HttpResponse

        status, body = check.report()
        response = HttpResponse(_json(body), status=status, content_type="application/json")
        response["Cache-Control"] = "no-store"
        return response

    return health
