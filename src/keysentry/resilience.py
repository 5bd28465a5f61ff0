"""The one retry / breaker / deadline policy for the OpenAI API, used by the verifier
(`verify/client.py`, which drives the SDK's calls) and the runtime guard (`runtime/`, which
sits in the SDK's HTTP transport). Two policies for one API would disagree about the same
answer; this module decides, its callers only send and sleep.

- What is retried is decided by status *and* error code: 408, 409, 429 and 5xx, timeouts
  and dropped connections, but never a code that cannot succeed on a second try
  (`insufficient_quota` and the other billing codes, `invalid_api_key`,
  `mismatched_project`), whatever its status; 400/401/403/404 never.
- Waits are full-jitter exponential backoff (uniform in [0, min(cap, base * 2^n)]), unless the
  API asked for one (`retry-after-ms`, else `Retry-After` in seconds or as an HTTP date). A
  wait longer than `max_retry_after`, or past the call's deadline, is not slept: the answer
  is reported as it is.
- A total deadline per call (all attempts and waits) bounds what one call can cost.
- One circuit breaker per host (scheme, host, port): consecutive host failures (timeouts,
  dropped connections, 408/5xx) open it; after a cool-down one trial is let through. A 429 is
  one key's rate limit or quota, not the host's health: it never counts toward opening it.

Why no library: tenacity and stamina (which wraps tenacity) drive retries by exceptions around
a callable, while the runtime guard decides on HTTP responses inside a transport, for sync and
async alike, and must fold Retry-After and a shared deadline into one wait; pybreaker counts
exceptions, has no per-key exemption for 429 and keeps locks a forked child could inherit held.
What remains is small and tested here (docs/architecture.md, "Runtime guard").

Everything is thread-safe, and a forked child (gunicorn, Celery prefork) gets fresh locks and
no trial left running by a thread that does not exist in it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from keysentry.errors import ProviderUnavailable

log = logging.getLogger("keysentry.resilience")

BILLING_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    }
)
# Codes that no retry can fix, whatever the status they come with.
NEVER_RETRIED_CODES = BILLING_CODES | {"invalid_api_key", "mismatched_project"}
RETRIED_STATUSES = frozenset({408, 409, 429})  # and every 5xx


class CircuitOpen(ProviderUnavailable):
    """The API failed repeatedly; calls fail fast until the cool-down ends."""


@dataclass(frozen=True)
class RetryPolicy:
    """How one call is retried. `attempts` counts the first try (attempts=3: two retries)."""

    attempts: int = 3
    backoff_base: float = 0.5  # seconds; the n-th retry waits up to base * 2^n
    backoff_cap: float = 8.0  # seconds: no backoff wait is longer
    max_retry_after: float = 30.0  # seconds: a longer wait asked by the API is reported
    deadline: float | None = None  # seconds for the whole call, retries and waits included

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^retry))."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**retry))


class Verdict(NamedTuple):
    """What one attempt says: retry it?, and what it says of the host (True: up, False:
    failing, None: nothing, e.g. a body the SDK could not parse)."""

    retryable: bool
    host_up: bool | None
    retry_after: float | None = None  # the wait the API asked for, seconds
    reason: str = ""


def status_verdict(
    status: int,
    code: str | None = None,
    type_: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict on an HTTP answer with this status and (for errors) error code/type."""
    if status < 400:
        return Verdict(False, True, None, "ok")
    wait = retry_after(headers) if headers is not None else None
    host_failing = status == 408 or status >= 500
    if code in NEVER_RETRIED_CODES or type_ in NEVER_RETRIED_CODES:
        return Verdict(False, not host_failing, wait, f"HTTP {status} {code or type_}")
    retryable = status in RETRIED_STATUSES or status >= 500
    return Verdict(retryable, not host_failing, wait, f"HTTP {status}")


def transport_verdict(kind: str) -> Verdict:
    """A timeout or a dropped connection: worth another try, and a mark against the host."""
    return Verdict(True, False, None, kind)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait the API asked for, in seconds: `retry-after-ms`, else `Retry-After` as seconds
    or as an HTTP date (RFC 9110); None when absent or unreadable."""
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


class CircuitBreaker:
    """closed -> (failures >= threshold) -> open -> (cool-down) -> half-open -> closed/open.

    Half-open lets one trial call through. The trial always ends in a verdict: success
    closes, a failure or an exception nobody expected (`abandon`) re-opens with a new
    cool-down, and a trial that never reports back (its thread died, the process forked) is
    replaced by another after one cool-down. So the breaker cannot stick half-open.
    Transitions are logged (logger `keysentry.resilience`) and passed to `listeners`."""

    def __init__(self, threshold: int = 5, cooldown: float = 60.0, host: str = "") -> None:
        self.threshold, self.cooldown, self.host = threshold, cooldown, host
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str, str, str], None]] = []  # (host, old, new)
        _every_breaker.add(self)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state(time.monotonic())

    @property
    def failures(self) -> int:
        return self._failures

    def _state(self, now: float) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if now - self._opened_at >= self.cooldown else "open"

    def before(self, host: str = "") -> None:
        """Raise CircuitOpen unless a call may go now (closed, or the one half-open trial)."""
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
                where = host or self.host or "the API"
                raise CircuitOpen(f"{where} failed repeatedly; not called again for {left:.0f} s")
            self._trial_started = now  # half-open: this caller is the one trial
        self._announce("open", "half-open")

    def success(self) -> None:
        with self._lock:
            was = self._state(time.monotonic())
            self._failures, self._opened_at, self._trial_started = 0, None, None
        if was != "closed":
            self._announce(was, "closed")

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            was = self._state(time.monotonic())
            reopen = self._trial_started is not None or self._failures >= self.threshold
            if reopen:
                self._reopen()
        if reopen and was != "open":
            self._announce(was, "open")

    def abandon(self) -> None:
        """The call ended with an exception that says nothing about the host (a response
        the SDK could not parse, an interrupt): a trial re-opens the circuit with a new
        cool-down; any other call leaves the count as it was."""
        with self._lock:
            trial = self._trial_started is not None
            if trial:
                self._reopen()
        if trial:
            self._announce("half-open", "open")

    def record(self, verdict: Verdict) -> None:
        if verdict.host_up is None:
            self.abandon()
        elif verdict.host_up:
            self.success()
        else:
            self.failure()

    def _reopen(self) -> None:
        self._opened_at, self._trial_started = time.monotonic(), None

    def _announce(self, old: str, new: str) -> None:
        level = logging.WARNING if new == "open" else logging.INFO
        log.log(
            level,
            "circuit for %s: %s -> %s",
            self.host or "the API",
            old,
            new,
            extra={"keysentry_event": "breaker", "host": self.host, "state": new},
        )
        for listener in list(self.listeners):
            listener(self.host, old, new)

    def _after_fork(self) -> None:
        # The parent's threads are gone: a lock one of them held, or a trial one of them was
        # running, would never be released in the child.
        self._lock = threading.Lock()
        self._trial_started = None


_every_breaker: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def host_of(url: str) -> str:
    """scheme://host:port of a URL: what one breaker guards."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def breaker_for(url: str, *, threshold: int = 5, cooldown: float = 60.0) -> CircuitBreaker:
    """The breaker of the URL's host, shared by every client of this process; the first
    caller's threshold and cool-down make it."""
    host = host_of(url)
    with _breakers_lock:
        breaker = _breakers.get(host)
        if breaker is None:
            breaker = _breakers[host] = CircuitBreaker(threshold, cooldown, host)
        return breaker


def _reset_after_fork() -> None:
    global _breakers_lock
    _breakers_lock = threading.Lock()
    for breaker in list(_every_breaker):
        breaker._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class DeadlineExceeded(ProviderUnavailable):
    """The call's total deadline passed before an answer worth returning."""


class Call:
    """One call under a policy and a breaker: the caller loops `before()`, sends, then
    `after(verdict)`, which returns the wait before the next attempt, or None to stop (return
    or raise what the attempt gave). The caller sleeps (sync or async)."""

    def __init__(self, policy: RetryPolicy, breaker: CircuitBreaker, host: str = "") -> None:
        self.policy, self.breaker, self.host = policy, breaker, host
        self.attempt = 0
        self.started = time.monotonic()

    def remaining(self) -> float | None:
        if self.policy.deadline is None:
            return None
        return self.policy.deadline - (time.monotonic() - self.started)

    def before(self) -> None:
        left = self.remaining()
        if left is not None and left <= 0:
            raise DeadlineExceeded(
                f"{self.host or 'the API'}: no answer within the deadline "
                f"of {self.policy.deadline:g} s"
            )
        self.breaker.before(self.host)
        self.attempt += 1

    def after(self, verdict: Verdict) -> float | None:
        self.breaker.record(verdict)
        if not verdict.retryable or self.attempt >= self.policy.attempts:
            return None
        if self.breaker.state == "open":
            return None  # this answer opened it: report it rather than fail fast on a retry
        if verdict.retry_after is not None:
            wait = verdict.retry_after
            if wait > self.policy.max_retry_after:
                return None  # too long to wait: reported, not slept
        else:
            wait = self.policy.backoff(self.attempt - 1)
        left = self.remaining()
        if left is not None and wait >= left:
            return None
        log.info(
            "retrying %s after %s (attempt %d of %d) in %.2f s",
            self.host or "the API",
            verdict.reason,
            self.attempt + 1,
            self.policy.attempts,
            wait,
            extra={"keysentry_event": "retry", "host": self.host, "wait": wait},
        )
        return wait
