"""The runtime guard (`keysentry.openai_client` / `async_openai_client`) against the project's
OpenAI server, driven by the real openai SDK: exact request counts for every rule."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from keygen import key_of
from keysentry import BudgetExceeded, ModelNotAllowed, async_openai_client, loader, openai_client
from keysentry.resilience import CircuitOpen, _breakers
from keysentry.runtime import budget as budgets
from keysentry.scanner.keys import KeyKind
from servers.openai_api import OpenAIServer, error

CHAT = "POST /v1/chat/completions"
RESPONSES = "POST /v1/responses"


def said(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


HELLO = said("Say hello.")
FAST: dict[str, Any] = {"backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.02}


def _client(api: OpenAIServer, **options: Any) -> openai.OpenAI:
    return openai_client(base_url=api.base_url, **{**FAST, **options})


client = _client


def test_the_client_is_the_sdks_own_with_its_retries_off(api: OpenAIServer, key: str) -> None:
    sdk = client(api)
    assert isinstance(sdk, openai.OpenAI) and sdk.max_retries == 0 and sdk.timeout == 30.0
    answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "Hello from the test server. Bye"
    assert answer.usage is not None and answer.usage.completion_tokens == 7
    assert api.requests[CHAT] == 1


def test_a_429_with_retry_after_is_retried_max_retries_times(api: OpenAIServer, key: str) -> None:
    body = error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
    api.inject("/v1/chat", 429, body, {"retry-after-ms": "20"}, times=5)
    with pytest.raises(openai.RateLimitError):
        client(api, max_retries=3).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api.requests[CHAT] == 4
    api.injected.clear()
    api.inject("/v1/chat", 429, body, {"Retry-After": "0"}, times=2)
    client(api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api.requests[CHAT] == 4 + 3


def test_a_retry_after_longer_than_the_cap_is_reported_not_slept(
    api: OpenAIServer, key: str
) -> None:
    body = error("Rate limit reached", "requests", "rate_limit_exceeded")
    api.inject("/v1/chat", 429, body, {"Retry-After": "600"})
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        client(api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api.requests[CHAT] == 1 and time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("status", "code", "type_"),
    [
        (429, "insufficient_quota", "insufficient_quota"),
        (400, "invalid_value", "invalid_request_error"),
        (403, None, "invalid_request_error"),
        (404, "model_not_found", "invalid_request_error"),
        (500, "insufficient_quota", "insufficient_quota"),  # the code decides, not the status
    ],
)
def test_answers_that_cannot_succeed_are_sent_once(
    api: OpenAIServer, key: str, status: int, code: str | None, type_: str
) -> None:
    api.inject("/v1/chat", status, error("no", type_, code), times=3)
    with pytest.raises(openai.APIStatusError):
        client(api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api.requests[CHAT] == 1


def test_a_refused_key_is_read_again_once_then_fails(
    api: OpenAIServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    del api.org.keys[key]
    with pytest.raises(openai.AuthenticationError) as caught:
        client(api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.code == "invalid_api_key" and key not in str(caught.value)
    assert api.requests[CHAT] == 1  # the store gave the same key: nothing to replay


def test_a_store_that_fails_on_the_re_read_leaves_the_401_as_the_answer(
    api: OpenAIServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = client(api)
    sdk.models.list()
    del api.org.keys[key]
    monkeypatch.delenv("OPENAI_API_KEY")  # the store no longer has it
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()
    assert api.requests["GET /v1/models"] == 2


def test_a_key_rotated_mid_run_replays_the_request_with_the_new_key(
    api: OpenAIServer, key: str, monkeypatch: pytest.MonkeyPatch, rng: random.Random
) -> None:
    sdk = client(api)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    new = key_of(KeyKind.PROJECT, rng).key
    del api.org.keys[key]
    api.org.add_key(new, "proj_app")
    monkeypatch.setenv("OPENAI_API_KEY", new)
    text = said("the same body, sent twice")
    answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=text)
    assert answer.usage is not None
    assert api.requests[CHAT] == 3  # ok; 401 with the old key; the replay with the new
    assert len(api.bodies) == 2 and api.bodies[-1]["messages"] == text  # the 401's body, again
    # Streaming too: rotate again, the stream is replayed and read whole.
    newer = key_of(KeyKind.PROJECT, rng).key
    del api.org.keys[new]
    api.org.add_key(newer, "proj_app")
    monkeypatch.setenv("OPENAI_API_KEY", newer)
    stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).endswith("Bye")
    assert api.requests[CHAT] == 5


def test_5xx_runs_timeouts_and_dropped_connections_are_retried(api: OpenAIServer, key: str) -> None:
    api.inject("/v1/chat", 503, times=2)
    client = functools.partial(_client, breaker_failures=50)
    client(api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api.requests[CHAT] == 3
    api.drops = 2
    client(api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api.requests[CHAT] == 3 + 3
    api.drops = 5
    with pytest.raises(openai.APIConnectionError):
        client(api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api.requests[CHAT] == 6 + 3
    api.drops, api.delay = 0, 0.5
    with pytest.raises(openai.APITimeoutError):
        client(api, timeout_seconds=0.1).chat.completions.create(
            model="gpt-4o-mini", messages=HELLO
        )
    assert api.requests[CHAT] == 9 + 3


def test_the_deadline_bounds_the_whole_call(api: OpenAIServer, key: str) -> None:
    api.delay = 0.8
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(api, timeout_seconds=5, deadline_seconds=0.5, max_retries=5).models.list()
    assert time.monotonic() - started < 1.5
    assert api.requests["GET /v1/models"] <= 2


def test_the_breaker_opens_fails_fast_and_recovers(api: OpenAIServer, key: str) -> None:
    sdk = client(api, max_retries=0, breaker_failures=3, breaker_cooldown_seconds=0.3)
    api.inject("/v1/models", 500, times=3)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            sdk.models.list()
    with pytest.raises(CircuitOpen):
        sdk.models.list()
    assert api.requests["GET /v1/models"] == 3  # failing fast: nothing sent
    time.sleep(0.35)
    assert len(sdk.models.list().data) == 2  # the half-open trial succeeds
    assert api.requests["GET /v1/models"] == 4
    assert _breakers[next(iter(_breakers))].state == "closed"


def test_one_keys_rate_limits_never_open_the_breaker(
    api: OpenAIServer, key: str, rng: random.Random
) -> None:
    body = error("Rate limit reached", "requests", "rate_limit_exceeded")
    api.inject("/v1/models", 429, body, {"retry-after-ms": "1"}, times=9)
    with pytest.raises(openai.RateLimitError):
        client(api, max_retries=8, breaker_failures=3).models.list()
    assert api.requests["GET /v1/models"] == 9
    assert len(client(api).models.list().data) == 2


def test_a_call_over_the_budget_is_refused_before_sending(api: OpenAIServer, key: str) -> None:
    sdk = client(api, token_budget=60, max_output_tokens=10)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # ~7 + 7 tokens used
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    long = said("word " * 100)
    with pytest.raises(BudgetExceeded, match="token budget"):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=long)
    assert api.requests[CHAT] == 2
    warned = client(api, token_budget=60, budget_mode="warn")
    warned.chat.completions.create(model="gpt-4o-mini", messages=long)
    assert api.requests[CHAT] == 3


def test_the_output_cap_and_the_model_allowlist_apply_before_sending(
    api: OpenAIServer, key: str
) -> None:
    sdk = client(api, models=("gpt-4o-mini",), max_output_tokens=3)
    answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api.bodies[-1]["max_completion_tokens"] == 3
    assert answer.usage is not None and answer.usage.completion_tokens == 3
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)
    assert "max_completion_tokens" not in api.bodies[-1]  # the caller's own cap is kept
    with pytest.raises(ModelNotAllowed, match="gpt-4o"):
        sdk.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert api.requests[CHAT] == 2


def test_usage_is_counted_and_priced_streamed_or_not(api: OpenAIServer, key: str) -> None:
    from keysentry.verify.spend import PRICES

    sdk = client(api)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    counter = next(iter(budgets._counters.values()))
    # The server's usage: 4 a message + a token per 4 characters in, its 7-token reply out.
    price_in, price_out = PRICES["gpt-4o-mini"]
    assert counter.totals().tokens == 14
    assert counter.totals().usd == pytest.approx((7 * price_in + 7 * price_out) / 1e6)
    stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    assert [c for c in stream][-1].usage is not None  # the guard asked for the usage chunk
    assert api.bodies[-1]["stream_options"] == {"include_usage": True}
    assert counter.totals().tokens == 28
    sdk.responses.create(model="gpt-4o", input="Say hello.")
    with sdk.responses.stream(model="gpt-4o", input="Say hello.") as events:
        assert events.get_final_response().usage is not None
    assert api.requests[RESPONSES] == 2 and counter.totals().tokens == 56


def test_the_spend_alert_fires_once_per_window_without_the_key(
    api: OpenAIServer, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    alerts: list[Any] = []
    sdk = client(api, cost_alert_threshold=0.000001, on_alert=alerts.append)
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        sdk.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert len(alerts) == 1 and alerts[0]["threshold_usd"] == 0.000001
    assert alerts[0]["spend_usd"] > 0 and key not in repr(alerts)
    assert any(r.__dict__.get("keysentry_event") == "spend_alert" for r in caplog.records)
    assert all(key not in r.getMessage() for r in caplog.records)


def test_settings_come_from_the_environment_first(
    api: OpenAIServer, key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "keysentry.toml").write_text("[runtime]\nmax_retries = 4\ntimeout_seconds = 9\n")
    loader.configure(None)
    from keysentry.runtime.settings import settings_for

    assert settings_for(None).max_retries == 4 and settings_for(None).timeout_seconds == 9
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "1")
    monkeypatch.setenv("OPENAI_COST_ALERT_THRESHOLD", "100.00")
    settings = settings_for(None)
    assert settings.max_retries == 1 and settings.cost_alert_threshold == 100.0
    api.inject("/v1/models", 503, times=5)
    with pytest.raises(openai.InternalServerError):
        client(api).models.list()
    assert api.requests["GET /v1/models"] == 2
    from keysentry.errors import ConfigError

    monkeypatch.setenv("OPENAI_MAX_RETRIES", "many")
    with pytest.raises(ConfigError, match="OPENAI_MAX_RETRIES"):
        settings_for(None)


def test_the_async_client_follows_the_same_rules(
    api: OpenAIServer, key: str, monkeypatch: pytest.MonkeyPatch, rng: random.Random
) -> None:
    async def run() -> None:
        sdk = async_openai_client(base_url=api.base_url, token_budget=4200, **FAST)
        assert isinstance(sdk, openai.AsyncOpenAI) and sdk.max_retries == 0
        api.inject(
            "/v1/chat",
            429,
            error("slow down", "requests", "rate_limit_exceeded"),
            {"retry-after-ms": "5"},
            times=2,
        )
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert api.requests[CHAT] == 3
        api.inject("/v1/chat", 429, error("pay", "insufficient_quota", "insufficient_quota"))
        with pytest.raises(openai.RateLimitError):
            await sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert api.requests[CHAT] == 4
        new = key_of(KeyKind.PROJECT, rng).key
        del api.org.keys[key]
        api.org.add_key(new, "proj_app")
        monkeypatch.setenv("OPENAI_API_KEY", new)
        stream = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
        chunks = [c async for c in stream]
        assert chunks[-1].usage is not None and api.requests[CHAT] == 6
        with pytest.raises(BudgetExceeded):
            await sdk.chat.completions.create(model="gpt-4o-mini", messages=said("x" * 800))
        assert api.requests[CHAT] == 6

    asyncio.run(run())


def test_one_client_shared_by_many_threads_counts_every_call_once(
    api: OpenAIServer, key: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sdk = client(api, max_retries=4, breaker_failures=50)
    api.inject("/v1/chat", 503, times=4)  # some threads retry; none runs out of tries

    def call(_: int) -> int:
        answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        return answer.usage.total_tokens if answer.usage else 0

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(call, range(48))) == [14] * 48
    counter = next(iter(budgets._counters.values()))
    assert counter.totals().tokens == 48 * 14 and api.requests[CHAT] == 48 + 4


def test_the_spend_alert_can_be_a_webhook(api: OpenAIServer, key: str) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[Any] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/alert"
        sdk = client(api, cost_alert_threshold=0.000001, alert=url)
        for _ in range(2):
            sdk.chat.completions.create(model="gpt-4o", messages=HELLO)
    finally:
        hook.shutdown()
        hook.server_close()
    assert len(received) == 1 and received[0]["threshold_usd"] == 0.000001
    assert key not in json.dumps(received)
