"""The runtime guard's rules for one environment, 12-factor style.

Each setting is read, first found wins, from: the keyword given to `openai_client()`; the
process environment (the names production guides use: `OPENAI_MAX_RETRIES`,
`OPENAI_TIMEOUT_SECONDS`, `OPENAI_COST_ALERT_THRESHOLD`, and `KEYSENTRY_*` for ours); the
config's `[runtime.<env>]` table; its `[runtime]` table; the default below. A value that is not
of its kind is a ConfigError naming where it came from, never a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from keysentry.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    """Every rule of the guard, with its default. See README, "Runtime guard"."""

    max_retries: int = 2  # retries after the first attempt (OPENAI_MAX_RETRIES)
    timeout_seconds: float = 30.0  # one attempt (OPENAI_TIMEOUT_SECONDS)
    deadline_seconds: float = 120.0  # one call, every attempt and wait included
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 8.0
    max_retry_after_seconds: float = 30.0  # a longer Retry-After is reported, not slept
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 60.0
    max_output_tokens: int = 4096  # set on a generation call that sets none (0: no cap)
    models: tuple[str, ...] = ()  # allowed models; () allows any
    token_budget: int = 0  # tokens per window (0: no budget)
    window_seconds: float = 3600.0  # the rolling window of the budget and the spend alert
    budget_mode: str = "refuse"  # or "warn"
    cost_alert_threshold: float = 0.0  # USD per window (0: no alert)
    alert: str = "log"  # "log", or an https:// URL to POST the alert to
    redis_url: str = ""  # share counters across processes and hosts
    health_cache_seconds: float = 30.0  # how long a liveness answer is reused
    on_alert: Callable[[Mapping[str, Any]], None] | None = field(default=None, compare=False)


ENVIRONMENT_NAMES = {
    "max_retries": "OPENAI_MAX_RETRIES",
    "timeout_seconds": "OPENAI_TIMEOUT_SECONDS",
    "cost_alert_threshold": "OPENAI_COST_ALERT_THRESHOLD",
    "max_output_tokens": "OPENAI_MAX_OUTPUT_TOKENS",
    "models": "OPENAI_MODEL_ALLOWLIST",
    "deadline_seconds": "KEYSENTRY_DEADLINE_SECONDS",
    "breaker_failures": "KEYSENTRY_BREAKER_FAILURES",
    "breaker_cooldown_seconds": "KEYSENTRY_BREAKER_COOLDOWN_SECONDS",
    "token_budget": "KEYSENTRY_TOKEN_BUDGET",
    "window_seconds": "KEYSENTRY_BUDGET_WINDOW_SECONDS",
    "budget_mode": "KEYSENTRY_BUDGET_MODE",
    "alert": "KEYSENTRY_COST_ALERT",
    "redis_url": "KEYSENTRY_REDIS_URL",
    "health_cache_seconds": "KEYSENTRY_HEALTH_CACHE_SECONDS",
}


def settings_for(env: str | None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The guard's settings for `env`, from the sources the module docstring lists."""
    from keysentry.loader import current_config

    raw = current_config().raw.get("runtime", {})
    if not isinstance(raw, Mapping):
        raise ConfigError("[runtime] must be a table")
    shared = {k: v for k, v in raw.items() if not isinstance(v, Mapping)}
    own = raw.get(env, {}) if env else {}
    if not isinstance(own, Mapping):
        raise ConfigError(f"[runtime.{env}] must be a table")
    values: dict[str, Any] = {}
    for source, where in ((shared, "[runtime]"), (own, f"[runtime.{env}]")):
        for name, value in source.items():
            values[name] = _checked(name, value, where)
    for name, variable in ENVIRONMENT_NAMES.items():
        text = os.environ.get(variable)
        if text not in (None, ""):
            values[name] = _checked(name, text, variable)
    for name, value in (overrides or {}).items():
        values[name] = value if name == "on_alert" else _checked(name, value, name)
    return replace(Settings(), **values)


_KINDS = {f.name: f for f in fields(Settings)}


def _checked(name: str, value: Any, where: str) -> Any:
    """`value` as the setting `name` wants it; strings (the environment) are parsed."""
    if name not in _KINDS or name == "on_alert":
        raise ConfigError(f"{where}: unknown runtime setting {name!r}")
    default = getattr(Settings(), name)
    try:
        if isinstance(default, bool) or default is None:
            raise ValueError
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if isinstance(default, int):
            number = int(value)
            if (
                isinstance(value, bool)
                or number < 0
                or (isinstance(value, float) and value != number)
            ):
                raise ValueError
            return number
        if isinstance(default, float):
            real = float(value)
            if isinstance(value, bool) or real < 0 or real != real:
                raise ValueError
            return real
        text = str(value)
        if name == "budget_mode" and text not in ("refuse", "warn"):
            raise ValueError
        if name == "alert" and text != "log" and not text.startswith(("https://", "http://")):
            raise ValueError
        return text
    except (TypeError, ValueError):
        kind = type(default).__name__
        raise ConfigError(
            f"{where}: {name} must be a {_KIND_NAMES.get(kind, kind)}, got {value!r}"
        ) from None


_KIND_NAMES = {
    "int": "whole number >= 0",
    "float": "number >= 0",
    "tuple": "list of names",
    "str": "known value",
}
