"""The one module that talks to the OpenAI API for the verifier.

- The openai SDK, with a configurable base URL (`OPENAI_BASE_URL` or `--base-url`).
- `OpenAI-Organization` and `OpenAI-Project` are never sent: the SDK would copy them from
  OPENAI_ORG_ID / OPENAI_PROJECT_ID, and a key of another project then looks dead
  (`mismatched_project`).
- The SDK's own retries are off (it would retry billing 429s blindly). Retries, waits, the
  deadline and the per-host circuit breaker are `keysentry.resilience`'s, the one policy the
  runtime guard (`keysentry.runtime`) follows too: this module only turns the SDK's
  exceptions into that core's verdicts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from keysentry.errors import AccessDenied, ProviderError, ProviderUnavailable
from keysentry.resilience import (
    BILLING_CODES,
    CircuitBreaker,
    CircuitOpen,
    RetryPolicy,
    Verdict,
    _breakers,
    breaker_for,
    status_verdict,
    transport_verdict,
)
from keysentry.resilience import Call as _Call
from keysentry.secret import Secret

__all__ = [
    "BILLING_CODES",
    "ApiClient",
    "CircuitBreaker",
    "CircuitOpen",
    "_breakers",
    "breaker_for",
    "error_code",
    "error_message",
    "health",
    "translated",
]

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_RETRY_AFTER = 30.0  # seconds: a longer wait is reported, not slept


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
        """`operation(sdk)`, retried as keysentry.resilience decides; the last error is
        raised as is."""
        import openai

        policy = RetryPolicy(attempts=self.attempts, max_retry_after=MAX_RETRY_AFTER)
        call = _Call(policy, self.breaker, self.base_url)
        while True:
            call.before()
            try:
                result = operation(self.sdk)
            except openai.APIStatusError as exc:
                wait = call.after(sdk_verdict(exc))
                if wait is None:
                    raise
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                wait = call.after(transport_verdict(type(exc).__name__))
                if wait is None:
                    raise
            except BaseException:
                self.breaker.abandon()  # e.g. APIResponseValidationError: no verdict on the host
                raise
            else:
                self.breaker.success()
                return result
            self._sleep(wait)


def sdk_verdict(exc: Any) -> Verdict:
    """The resilience core's verdict on an SDK status error."""
    return status_verdict(exc.status_code, error_code(exc), error_type(exc), exc.response.headers)


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
        return {
            "status": status,
            "breaker": client.breaker.state,
            "http_status": exc.status_code,
            "detail": error_message(exc)[:200],
        }
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


def unreachable(exc: Any) -> str:
    """What to say when the API gave no HTTP answer (offline, DNS, a timeout, a proxy, TLS):
    which host, the settings that route around it, and that nothing was decided."""
    url = getattr(getattr(exc, "request", None), "url", None)
    host = getattr(url, "host", None) or "api.openai.com"
    return (
        f"{host} could not be reached ({type(exc).__name__}: DNS, timeout, proxy or TLS), so "
        "the verdict is unknown; behind a proxy set HTTPS_PROXY, for another endpoint set "
        "OPENAI_BASE_URL"
    )


def as_keysentry_error(exc: Any) -> ProviderError:
    """An openai SDK error as one of keysentry's, with the API's message only."""
    status = getattr(exc, "status_code", None)
    text = (
        f"OpenAI API: HTTP {status}: {error_message(exc)[:200]}"
        if status
        else f"OpenAI API: {unreachable(exc)}"
    )
    if status in (401, 403):
        return AccessDenied(text)
    if status is None or status == 429 or status >= 500:
        return ProviderUnavailable(text)
    return ProviderError(text)
