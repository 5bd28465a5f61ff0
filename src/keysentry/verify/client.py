"""The one module that talks to the OpenAI API.

- The openai SDK, with a configurable base URL (`OPENAI_BASE_URL` or `--base-url`).
- `OpenAI-Organization` and `OpenAI-Project` are never sent: the SDK would copy them from
  OPENAI_ORG_ID / OPENAI_PROJECT_ID, and a key of another project then looks dead
  (`mismatched_project`).
- The SDK's own retries are off (it would retry billing 429s and 401s' neighbours blindly);
  ours: exponential backoff with full jitter on 429 and 5xx, honouring Retry-After up to a
  cap, and no retry on 400/401/403/404 or on billing 429s (`insufficient_quota`: retrying
  does not restore access).
- A circuit breaker per host: after consecutive failures (timeouts, dropped connections,
  408/5xx) it opens and calls fail fast; after a cool-down one trial call is let through
  (half-open) and decides. A 429 is one key's rate limit or quota, not the host's health: it
  never counts toward opening the breaker for the other keys.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from keysentry.errors import AccessDenied, ProviderError, ProviderUnavailable
from keysentry.secret import Secret

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BILLING_CODES = frozenset({"insufficient_quota", "credit_balance_exhausted",
                           "organization_spend_limit_exceeded", "project_spend_limit_exceeded",
                           "organization_usage_limit_exceeded"})  # fmt: skip
MAX_RETRY_AFTER = 30.0  # seconds: a longer wait is reported, not slept


class CircuitOpen(ProviderUnavailable):
    """The API failed repeatedly; calls fail fast until the cool-down ends."""


class CircuitBreaker:
    """closed -> (failures >= threshold) -> open -> (cool-down) -> half-open -> closed/open.

    Half-open lets one trial call through. The trial always ends in a verdict: success
    closes, a failure or an exception nobody expected (`abandon`) re-opens with a new
    cool-down, and a trial that never reports back (its thread died, the process forked) is
    replaced by another after one cool-down. So the breaker cannot stick half-open."""

    def __init__(self, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self._lock = threading.Lock()
        _every_breaker.add(self)

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if time.monotonic() - self._opened_at >= self.cooldown:
                return "half-open"
            return "open"

    def before(self, host: str) -> None:
        with self._lock:
            if self._opened_at is None:
                return
            now = time.monotonic()
            waited = now - self._opened_at
            trial_running = (
                self._trial_started is not None and now - self._trial_started < self.cooldown
            )
            if waited < self.cooldown or trial_running:
                left = max(0.0, self.cooldown - waited)
                raise CircuitOpen(f"{host} failed repeatedly; not called again for {left:.0f} s")
            self._trial_started = now  # half-open: this caller is the one trial

    def success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._trial_started = 0, None, None

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_started is not None or self._failures >= self.threshold:
                self._reopen()

    def abandon(self) -> None:
        """The call ended with an exception that says nothing about the host (a response
        the SDK could not parse, an interrupt): a trial re-opens the circuit with a new
        cool-down; any other call leaves the count as it was."""
        with self._lock:
            if self._trial_started is not None:
                self._reopen()

    def _reopen(self) -> None:
        self._opened_at, self._trial_started = time.monotonic(), None

    def _after_fork(self) -> None:
        # The parent's threads are gone: a lock one of them held, or a trial one of them was
        # running, would never be released in the child.
        self._lock = threading.Lock()
        self._trial_started = None


_every_breaker: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(base_url: str) -> CircuitBreaker:
    with _breakers_lock:
        return _breakers.setdefault(base_url, CircuitBreaker())


def _reset_after_fork() -> None:
    global _breakers_lock
    _breakers_lock = threading.Lock()
    for breaker in list(_every_breaker):
        breaker._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class ApiClient:
    """Calls the API for one key (or admin key), with our retries and the host's breaker."""

    def __init__(
        self,
        key: Secret,
        *,
        admin: bool = False,
        base_url: str | None = None,
        timeout: float = 10.0,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import openai

        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        # Omit drops the headers the SDK would otherwise fill from the environment.
        headers: Any = {"OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()}
        self.sdk: Any = openai.OpenAI(
            api_key=None if admin else key.reveal(),
            admin_api_key=key.reveal() if admin else None,
            base_url=self.base_url,
            timeout=timeout,
            max_retries=0,
            default_headers=headers,
        )
        self.breaker = breaker_for(self.base_url)
        self.attempts = attempts
        self._sleep = sleep

    def call(self, operation: Callable[[Any], T]) -> T:
        """`operation(sdk)`, retried as the module says; the last error is raised as is."""
        import openai

        for attempt in range(self.attempts):
            self.breaker.before(self.base_url)
            try:
                result = operation(self.sdk)
            except openai.APIStatusError as exc:
                if exc.status_code == 429 or not _retryable(exc):
                    # The API answered, so the host is up. A 429 is about this key (its rate
                    # limit, or its quota): it must not fail fast the calls of every other key.
                    self.breaker.success()
                else:
                    self.breaker.failure()
                if not _retryable(exc):
                    raise
                delay = _retry_after(exc)
                if attempt + 1 == self.attempts or (delay is not None and delay > MAX_RETRY_AFTER):
                    raise
                self._sleep(delay if delay is not None else _backoff(attempt))
            except (openai.APITimeoutError, openai.APIConnectionError):
                self.breaker.failure()
                if attempt + 1 == self.attempts:
                    raise
                self._sleep(_backoff(attempt))
            except BaseException:
                self.breaker.abandon()  # e.g. APIResponseValidationError: no verdict on the host
                raise
            else:
                self.breaker.success()
                return result
        raise AssertionError("unreachable: the last attempt returns or raises")


def _retryable(exc: Any) -> bool:
    status = exc.status_code
    if status == 429:
        return error_code(exc) not in BILLING_CODES and error_type(exc) not in BILLING_CODES
    return bool(status == 408 or status >= 500)


def error_code(exc: Any) -> str | None:
    return getattr(exc, "code", None)


def error_type(exc: Any) -> str | None:
    return getattr(exc, "type", None)


def error_message(exc: Any) -> str:
    """The API's own message (bare-string errors included), never the SDK's text, which may
    quote the request. Remote text enters our data here: any key in it (the API quotes keys
    back) is redacted, and it is made one line."""
    from keysentry.safety import escape_control, scrub

    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = str(inner.get("message", "")) if isinstance(inner, dict) else str(inner)
    else:
        message = str(body or "")
    return escape_control(scrub(message))


def _retry_after(exc: Any) -> float | None:
    """The wait the API asked for, in seconds: `retry-after-ms`, else `Retry-After` as seconds
    or as an HTTP date (RFC 9110); None when absent or unreadable."""
    headers = exc.response.headers
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _backoff(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    return random.uniform(0, min(cap, base * 2**attempt))  # full jitter


def health(key: Secret, *, base_url: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """For a web app's `/health/openai`: can this key reach the API? One unbilled
    `GET /models`, through the breaker (an open breaker answers without calling)."""
    import openai

    client = ApiClient(key, base_url=base_url, timeout=timeout, attempts=1)
    started = time.monotonic()
    try:
        client.call(lambda sdk: sdk.models.list())
    except CircuitOpen as exc:
        return {"status": "down", "breaker": "open", "detail": str(exc)}
    except openai.APIStatusError as exc:
        status = "degraded" if exc.status_code in (429,) else "down"
        return {"status": status, "breaker": client.breaker.state, "http_status": exc.status_code,
                "detail": error_message(exc)[:200]}  # fmt: skip
    except openai.APIError as exc:
        return {"status": "down", "breaker": client.breaker.state, "detail": type(exc).__name__}
    latency = (time.monotonic() - started) * 1000
    return {"status": "ok", "breaker": client.breaker.state, "latency_ms": round(latency, 1)}


def translated(action: Callable[[], T]) -> T:
    """`action()`, with the openai SDK's errors raised as keysentry's (one line, no key)."""
    import openai

    try:
        return action()
    except openai.APIError as exc:
        raise as_keysentry_error(exc) from None


def as_keysentry_error(exc: Any) -> ProviderError:
    """An openai SDK error as one of keysentry's, with the API's message only."""
    status = getattr(exc, "status_code", None)
    text = f"OpenAI API: HTTP {status}: {error_message(exc)[:200]}" if status else \
        f"OpenAI API did not answer: {type(exc).__name__}"  # fmt: skip
    if status in (401, 403):
        return AccessDenied(text)
    if status is None or status == 429 or status >= 500:
        return ProviderUnavailable(text)
    return ProviderError(text)
