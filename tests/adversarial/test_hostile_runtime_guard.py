"""A hostile API behind the runtime guard: error bodies that quote the key, Retry-After values
that are not numbers or are forever, event streams built to cost quadratic time, a model name
that is a key. The guard never sleeps unbounded, never takes more than linear time, and no log
record, exception or alert holds the key (`assert_nowhere`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import openai
import pytest
from leaks import assert_nowhere

from keysentry import ModelNotAllowed, openai_client
from keysentry.resilience import retry_after
from keysentry.runtime import budget as budgets
from keysentry.runtime.transport import _EventUsage
from servers.openai_api import OpenAIServer, error

CHAT = "POST /v1/chat/completions"


def records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """keysentry's records and the SDK's. (httpcore2's DEBUG records print response headers
    as received: a server that echoes the key in a header is echoed there, outside our reach.)"""
    ours = [r for r in caplog.records if r.name.startswith(("keysentry", "openai"))]
    assert ours, "nothing was logged: the check would pass vacuously"
    return [f"{r.getMessage()} {r.__dict__}" for r in ours]


def test_error_bodies_and_headers_that_quote_the_key_reach_no_log_or_exception(
    api: OpenAIServer, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quoted = error(f"Rate limit for {key} reached", "requests", "rate_limit_exceeded")
    api.inject("/v1/chat", 429, quoted, {"Retry-After": key, "x-echo": key}, times=3)
    api.inject("/v1/chat", 500, error(f"boom {key}", "server_error", key), times=3)
    sdk = openai_client(base_url=api.base_url, backoff_base_seconds=0.01, breaker_failures=50)
    caught: list[BaseException] = []
    for _ in range(2):
        try:
            sdk.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.APIError as exc:
            caught.append(exc)
    assert api.requests[CHAT] == 6  # three tries each; an unreadable Retry-After is backoff
    assert_nowhere(key, *records(caplog), *(str(e) for e in caught))


def test_retry_after_values_that_are_not_waits_are_bounded() -> None:
    for value in ("nan", "inf", "-5", "1e309", "Fri, 31 Dec 9999 23:59:59 GMT", "x" * 100_000):
        wait = retry_after({"retry-after": value})
        assert wait is None or wait >= 0
    assert retry_after({"retry-after-ms": "inf"}) == float("inf")  # then never slept: > cap


def test_a_forever_retry_after_is_reported_at_once(api: OpenAIServer, key: str) -> None:
    body = error("Rate limit reached", "requests", "rate_limit_exceeded")
    api.inject("/v1/chat", 429, body, {"retry-after-ms": "inf"})
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        openai_client(base_url=api.base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert time.monotonic() - started < 5 and api.requests[CHAT] == 1


def test_an_event_stream_built_for_quadratic_time_is_read_in_linear_time() -> None:
    found: list[Any] = []
    scanner = _EventUsage(found.append)
    started = time.monotonic()
    for _ in range(40_000):  # 40 MB of one line, 1 KB a chunk, no newline
        scanner.feed(b"x" * 1024)
    scanner.feed(b'\ndata: {"usage": {"prompt_tokens": 1, "completion_tokens": 2}}\n')
    assert time.monotonic() - started < 10
    assert found == [{"model": None, "prompt_tokens": 1, "completion_tokens": 2}]


def test_a_model_name_that_is_a_key_is_refused_without_showing_it(
    api: OpenAIServer, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sdk = openai_client(base_url=api.base_url, models=("gpt-4o-mini",))
    with pytest.raises(ModelNotAllowed) as refused:
        sdk.chat.completions.create(model=key, messages=[{"role": "user", "content": "hi"}])
    assert api.requests[CHAT] == 0
    assert_nowhere(key, str(refused.value), repr(refused.value), *records(caplog))


def test_usage_that_is_not_numbers_is_ignored_and_the_alert_never_holds_the_key(
    api: OpenAIServer, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alerts: list[Any] = []
    api.inject("/v1/chat", 200, {"usage": {"prompt_tokens": key, "completion_tokens": []}})
    sdk = openai_client(base_url=api.base_url, cost_alert_threshold=1e-9, on_alert=alerts.append)
    messages: Any = [{"role": "user", "content": "hi"}]
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
    assert raw.http_response.status_code == 200 and alerts == []
    sdk.chat.completions.create(model="gpt-4o", messages=messages)
    assert len(alerts) == 1
    assert_nowhere(key, repr(alerts), *records(caplog))


def test_a_fork_while_threads_hold_the_guards_locks_leaves_the_child_a_working_client(
    api: OpenAIServer, key: str
) -> None:
    """gunicorn or Celery prefork forking while another thread is inside the breaker registry
    or a budget counter: the child gets fresh locks and makes its call."""
    import os
    import threading

    from test_hostile_runtime import in_a_forked_child

    from keysentry import resilience

    if not hasattr(os, "fork"):
        pytest.skip("needs fork()")
    sdk = openai_client(base_url=api.base_url)
    messages: Any = [{"role": "user", "content": "hi"}]
    sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)
    counter = next(iter(budgets._counters.values()))
    assert isinstance(counter, budgets.LocalCounter)
    ready, done = threading.Event(), threading.Event()

    def hold_the_locks() -> None:
        with resilience._breakers_lock, budgets._counters_lock, counter._lock:
            ready.set()
            done.wait(30)

    holder = threading.Thread(target=hold_the_locks, daemon=True)
    holder.start()
    assert ready.wait(10)

    def child_call() -> str:
        answer = openai_client(base_url=api.base_url).chat.completions.create(
            model="gpt-4o-mini", messages=messages
        )
        return str(answer.usage.total_tokens if answer.usage else None)

    status, report = in_a_forked_child(child_call)
    done.set()
    holder.join(10)
    assert (status, report) == (0, "12")
    assert_nowhere(key, report)
