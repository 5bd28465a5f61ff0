"""`openai_client()` / `async_openai_client()`: the SDK's own `OpenAI` / `AsyncOpenAI` for an
environment's key, with the runtime guard (`transport.py`) as its HTTP transport.

    client = keysentry.openai_client("production")   # instead of OpenAI()

Keyword options: the settings of `settings.py` by name (`max_retries=5`, `token_budget=…`,
`on_alert=callable`, …) and anything `openai.OpenAI` takes (`base_url`, `organization`, …).
The SDK's `max_retries` is always 0: the guard retries.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from keysentry.loader import DEFAULT_NAME, load_key, refresh
from keysentry.runtime.budget import budget_for
from keysentry.runtime.settings import Settings, settings_for
from keysentry.runtime.transport import AsyncGuardedTransport, Guard, GuardedTransport
from keysentry.secret import Secret

if TYPE_CHECKING:
    import openai

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_SETTINGS = {f.name for f in fields(Settings)}
# Old spellings of the SDK's own options, mapped onto the guard's settings.
_SDK_ALIASES = {"timeout": "timeout_seconds"}


def guard_for(env: str | None = None, *, name: str = DEFAULT_NAME, **options: Any) -> Guard:
    """The guard a client of `env` gets (the health handlers use it too)."""
    env = env or os.environ.get("KEYSENTRY_ENV") or None
    overrides = {k: v for k, v in options.items() if k in _SETTINGS}
    settings = settings_for(env, overrides)
    base_url = str(options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
    return Guard(
        settings,
        budget_for(env, settings),
        base_url,
        current=lambda: load_key(name, env=env),
        refreshed=lambda: _refreshed(name, env),
    )


def openai_client(
    env: str | None = None, *, name: str = DEFAULT_NAME, **options: Any
) -> openai.OpenAI:
    """An `openai.OpenAI` for the environment's key, every request under the guard."""
    import httpx2 as httpx
    import openai

    guard, sdk_options = _split(env, name, options)
    transport = GuardedTransport(httpx.HTTPTransport(limits=_limits(httpx)), guard)
    timeout = guard.settings.timeout_seconds
    return openai.OpenAI(
        api_key=guard.current().reveal(),
        timeout=timeout,
        max_retries=0,
        http_client=httpx.Client(transport=transport, timeout=timeout),
        **sdk_options,
    )


def async_openai_client(
    env: str | None = None, *, name: str = DEFAULT_NAME, **options: Any
) -> openai.AsyncOpenAI:
    """An `openai.AsyncOpenAI` for the environment's key, every request under the guard."""
    import httpx2 as httpx
    import openai

    guard, sdk_options = _split(env, name, options)
    transport = AsyncGuardedTransport(httpx.AsyncHTTPTransport(limits=_limits(httpx)), guard)
    timeout = guard.settings.timeout_seconds
    return openai.AsyncOpenAI(
        api_key=guard.current().reveal(),
        timeout=timeout,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport, timeout=timeout),
        **sdk_options,
    )


def _split(env: str | None, name: str, options: dict[str, Any]) -> tuple[Guard, dict[str, Any]]:
    options = {_SDK_ALIASES.get(k, k): v for k, v in options.items()}
    guard = guard_for(env, name=name, **options)
    sdk_options = {k: v for k, v in options.items() if k not in _SETTINGS}
    return guard, sdk_options


def _limits(httpx: Any) -> Any:
    return httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _refreshed(name: str, env: str | None) -> Secret:
    refresh(name, env=env)
    return load_key(name, env=env)
