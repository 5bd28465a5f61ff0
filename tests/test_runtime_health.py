"""`/health/openai` in every framework, each driven by its own test client, against the
project's OpenAI server: the report, its 200/503 rule, and liveness cached between probes."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keysentry import loader
from keysentry.runtime import budget as budgets
from keysentry.runtime import health
from servers.openai_api import OpenAIServer

MODELS = "GET /v1/models"


@pytest.fixture
def key(key: str, api: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The shared live key (tests/openai_fixtures.py), with the API found by OPENAI_BASE_URL
    as a deployed app finds it."""
    monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
    return key


def assert_healthy(status: int, body: dict[str, Any], key: str) -> None:
    assert status == 200, body
    assert body["status"] == "ok" and body["breaker"] == "closed"
    assert body["key"] == {"source": "env://OPENAI_API_KEY", "version": None}
    assert body["budget"]["tokens_left"] == 1000 and body["spend_over_threshold"] is False
    assert key not in str(body)


def test_the_report_is_cached_and_follows_the_503_rule(api: OpenAIServer, key: str) -> None:
    check = health.HealthCheck(token_budget=1000, health_cache_seconds=60)
    for _ in range(3):
        status, body = check.report()
        assert_healthy(status, body, key)
    assert api.requests[MODELS] == 1  # one request per cache interval, not per probe
    assert check.report()[1]["liveness"]["cached"] is True
    refused = health.HealthCheck(health_cache_seconds=0)
    del api.org.keys[key]
    status, body = refused.report()
    assert status == 503 and body["status"] == "down" and key not in str(body)


def test_a_spent_budget_is_503_and_spend_over_the_threshold_is_reported(
    api: OpenAIServer, key: str
) -> None:
    from keysentry import openai_client

    sdk = openai_client(token_budget=29, max_output_tokens=5, cost_alert_threshold=0.000001)
    sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x" * 80}])
    status, body = health.HealthCheck(
        token_budget=29, max_output_tokens=5, cost_alert_threshold=0.000001
    ).report()
    # 4 a message + 80 characters / 4, and the 5 the output cap allowed: the budget exactly
    assert body["spend_over_threshold"] is True and body["budget"]["tokens_used"] == 29
    assert status == 503 and body["budget"]["tokens_left"] == 0


def test_a_missing_key_is_503_naming_where_it_was_looked_for(
    api: OpenAIServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    loader.configure(None)
    status, body = health.HealthCheck().report()
    assert status == 503 and "OPENAI_API_KEY" in body["key"]["error"]


def test_flask(api: OpenAIServer, key: str) -> None:
    import flask

    app = flask.Flask(__name__)
    app.register_blueprint(health.flask_blueprint(token_budget=1000))
    response = app.test_client().get("/health/openai")
    assert_healthy(response.status_code, response.get_json(), key)
    assert response.headers["Cache-Control"] == "no-store"


def test_starlette_and_fastapi(api: OpenAIServer, key: str) -> None:
    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    starlette_app = Starlette(routes=[health.starlette_route(token_budget=1000)])
    fastapi_app = FastAPI()
    fastapi_app.include_router(health.fastapi_router(token_budget=1000, health_cache_seconds=0))
    for app in (starlette_app, fastapi_app):
        with TestClient(app) as client:
            response = client.get("/health/openai")
        assert_healthy(response.status_code, response.json(), key)
    assert api.requests[MODELS] == 2


def test_django(api: OpenAIServer, key: str) -> None:
    import django
    from django.conf import settings
    from django.urls import path

    urls = types.ModuleType("keysentry_health_test_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("health/openai", health.django_view(token_budget=1000))
    ]
    sys.modules[urls.__name__] = urls
    if not settings.configured:
        settings.configure(
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=urls.__name__,
            SECRET_KEY="health-test",
            INSTALLED_APPS=[],
        )
        django.setup()
    from django.test import Client
    from django.test.utils import override_settings

    with override_settings(ROOT_URLCONF=urls.__name__):
        response = Client().get("/health/openai")
    assert_healthy(response.status_code, response.json(), key)


def test_plain_wsgi(api: OpenAIServer, key: str) -> None:
    import json
    from wsgiref.util import setup_testing_defaults
    from wsgiref.validate import validator

    app = validator(health.wsgi_app(token_budget=1000))
    environ: dict[str, Any] = {"PATH_INFO": "/health/openai", "SCRIPT_NAME": "", "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    started: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        started.append(status)
        return lambda data: None

    result = app(environ, start_response)
    body = b"".join(result)
    result.close()  # type: ignore[attr-defined]
    assert_healthy(int(started[0].split()[0]), json.loads(body), key)


def test_the_readmes_ten_line_app_gets_every_rule_and_the_health_endpoint(
    api: OpenAIServer, key: str, tmp_path: Path
) -> None:
    """The README's example, as written, against the test server: answers, counts its tokens,
    and serves /health/openai."""
    import re

    from starlette.testclient import TestClient

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The runtime guard") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None and len(code.group(1).strip().splitlines()) <= 12
    (tmp_path / "keysentry.toml").write_text(
        '[environments.production]\nOPENAI_API_KEY = "env://OPENAI_API_KEY"\n'
    )
    loader.configure(None)
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    with TestClient(namespace["app"]) as client:
        answer = client.post("/ask", params={"question": "Say hello."})
        assert answer.json() == "Hello from the test server. Bye"
        health_answer = client.get("/health/openai")
    assert health_answer.status_code == 200 and health_answer.json()["env"] == "production"
    assert api.bodies[-1]["max_output_tokens"] == 4096  # the guard's default cap
    assert budgets._counters[("production", "", 3600.0)].totals().tokens == 14
    assert key not in health_answer.text
