"""The runtime loader: the right key for this environment, from wherever it lives.

    from keysentry import load_key
    key = load_key()                      # OPENAI_API_KEY for $KEYSENTRY_ENV
    client = OpenAI(api_key=key.reveal())

The environment is `env=` or KEYSENTRY_ENV. Its references come from the config's
`[environments.<env>]` table (keysentry.toml or pyproject.toml's [tool.keysentry]); a name the
config does not map (or no environment at all) is read from `env://NAME`, then
`dotenv://.env#NAME`. Values are cached per process (see providers.cache); `refresh()` forgets
them. A process forked while another thread is loading (gunicorn, Celery prefork) gets fresh
locks and store clients in the child, which keeps the values.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from keysentry.config import Config, load_config
from keysentry.errors import ConfigError, SecretNotFound
from keysentry.providers.base import Fetched, SecretRef, parse_ref
from keysentry.providers.cache import SecretCache
from keysentry.secret import Secret

DEFAULT_NAME = "OPENAI_API_KEY"
NO_ENVIRONMENTS = (
    "no environments configured, so there is nothing to check: add one to keysentry.toml, "
    'e.g. [environments.production] with OPENAI_API_KEY = "aws-sm://prod/openai#OPENAI_API_KEY" '
    "(or [tool.keysentry.environments.production] in pyproject.toml)"
)

_cache = SecretCache()
# (name, env) -> (cache key, fetcher) per reference, in the order they are tried.
_resolved: dict[tuple[str, str | None], tuple[tuple[str, Callable[[], Fetched]], ...]] = {}
_config: Config | None = None
_config_lock = threading.Lock()


class Resolution(NamedTuple):
    """Where a name comes from in an environment: the references tried in order."""

    name: str
    env: str | None
    refs: tuple[SecretRef, ...]


def load_key(name: str = DEFAULT_NAME, *, env: str | None = None) -> Secret:
    """The secret `name` for the environment (`env`, else KEYSENTRY_ENV), cached."""
    return fetch(name, env=env).secret


def fetch(name: str = DEFAULT_NAME, *, env: str | None = None) -> Fetched:
    """Like load_key, with where the value came from."""
    env = env or os.environ.get("KEYSENTRY_ENV") or None
    sources = _resolved.get((name, env))
    if sources is None:
        sources = tuple((str(ref), functools.partial(_get, ref)) for ref in resolve(name, env).refs)
        _resolved[(name, env)] = sources
    errors = []
    for key, get in sources:
        try:
            return _cache.get(key, get)
        except SecretNotFound as exc:
            if len(sources) == 1:
                raise  # one reference: its own error says it best
            errors.append(str(exc))
    raise SecretNotFound(f"{name} is not set for {_where(env)}: " + "; ".join(errors))


def refresh(name: str | None = None, *, env: str | None = None) -> None:
    """Forget cached values (one name's, or all), so the next load reads the store: after a
    rotation, or when the store answered 401."""
    if name is None:
        _cache.invalidate()
        return
    env = env or os.environ.get("KEYSENTRY_ENV") or None
    for key, _ in _resolved.get((name, env), ()):
        _cache.invalidate(key)


def configure(config: Config | None = None) -> None:
    """Use `config` (None: load it again from the current directory) and forget everything
    cached; for applications that change directory or config at run time, and for tests."""
    global _config
    with _config_lock:
        _config = config
        _resolved.clear()
        _cache.invalidate()
        settings = load_settings(config) if config is not None else (300.0, 3600.0)
        _cache.ttl, _cache.stale_if_error = settings


def current_config() -> Config:
    global _config
    with _config_lock:
        if _config is None:
            config = load_config()
            # Kept only once valid: a bad [load] (a key pasted there) fails every call, not one.
            _cache.ttl, _cache.stale_if_error = load_settings(config)
            _config = config
        return _config


def _reset_after_fork() -> None:
    # A parent's thread may have held the lock while reading the config: the child has no
    # such thread, so it would wait forever. The cache resets itself (providers.cache).
    global _config_lock
    _config_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def resolve(name: str, env: str | None) -> Resolution:
    """The references `name` resolves to in `env`, validated, or a ConfigError saying why."""
    config = current_config()
    if env is not None:
        text = environment(config, env).get(name)
        if text is not None:
            where = f"{_config_name(config)}: [environments.{env}].{name}"
            return Resolution(name, env, (parse_ref(text, where),))
    fallback = (parse_ref(f"env://{name}"), parse_ref(f"dotenv://.env#{name}"))
    return Resolution(name, env, fallback)


def environments(config: Config) -> dict[str, dict[str, str]]:
    """The config's environments, each a table of NAME = "reference", checked."""
    raw = config.raw.get("environments", {})
    where = _config_name(config)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [environments] must be a table of environments")
    table: dict[str, dict[str, str]] = {}
    for env, names in raw.items():
        if not isinstance(names, Mapping):
            raise ConfigError(f"{where}: [environments.{env}] must be a table of NAME = ref")
        for name, ref in names.items():
            if not isinstance(ref, str):
                raise ConfigError(
                    f"{where}: [environments.{env}].{name} must be a string "
                    'reference such as "env://OPENAI_API_KEY"'
                )
            parse_ref(ref, f"{where}: [environments.{env}].{name}")
        table[str(env)] = {str(k): str(v) for k, v in names.items()}
    return table


def configured_environments(config: Config) -> dict[str, dict[str, str]]:
    """The config's environments, or a ConfigError that says how to add one: a command that
    checks every environment must not pass having checked none."""
    table = environments(config)
    if not table:
        raise ConfigError(f"{_config_name(config)}: {NO_ENVIRONMENTS}")
    return table


def environment(config: Config, env: str) -> dict[str, str]:
    """One environment's NAME = "reference" table, or a ConfigError listing the known ones."""
    table = environments(config)
    if env not in table:
        known = ", ".join(sorted(table)) or "none"
        raise ConfigError(f"{_config_name(config)}: no environment {env!r} (known: {known})")
    return table[env]


def load_settings(config: Config) -> tuple[float, float]:
    """[load]'s (ttl_seconds, stale_if_error_seconds): how long a loader keeps a value. Key
    rotation waits out the same TTL before it retires the old key."""
    load = config.raw.get("load", {})
    where = f"{_config_name(config)}: [load]"
    if not isinstance(load, Mapping):
        raise ConfigError(f"{where} must be a table")
    values = []
    for key, default in (("ttl_seconds", 300.0), ("stale_if_error_seconds", 3600.0)):
        value: Any = load.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}.{key} must be a number of seconds, got {value!r}")
        values.append(float(value))
    return values[0], values[1]


def _get(ref: SecretRef) -> Fetched:
    from keysentry.providers import provider_for

    return provider_for(ref.scheme).get(ref)


def _config_name(config: Config) -> str:
    return str(config.path) if config.path else "keysentry config"


def _where(env: str | None) -> str:
    return f"environment {env!r}" if env else "this process (no KEYSENTRY_ENV)"


def openai_client(env: str | None = None, *, name: str = DEFAULT_NAME, **options: Any) -> Any:
    """An `openai.OpenAI` for the environment's key under the runtime guard; see
    `keysentry.runtime` (after a 401 it reads the key again once and replays the request)."""
    from keysentry.runtime.client import openai_client as guarded

    return guarded(env, name=name, **options)
