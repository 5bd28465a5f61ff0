"""`vault://MOUNT/PATH#FIELD`: HashiCorp Vault (or OpenBao) KV, through hvac.

Options: `addr` (else VAULT_ADDR), `namespace` (else VAULT_NAMESPACE, which hvac itself does
not read), `version` (KV v2), `kv` (`2`, the default, or `1`). Requests time out after
VAULT_CLIENT_TIMEOUT seconds (10 by default). Authentication, from the
environment: VAULT_TOKEN; else AppRole (VAULT_ROLE_ID and VAULT_SECRET_ID, mount
VAULT_APPROLE_MOUNT or `approle`); else Kubernetes (VAULT_K8S_ROLE, the service account token
at VAULT_K8S_TOKEN_PATH or the standard path, mount VAULT_K8S_MOUNT or `kubernetes`).

- `~/.vault-token` is never read: hvac reads it whenever it is given `token=None`, and a token
  found there would also skip the AppRole and Kubernetes logins, so hvac always gets a token
  (an empty one before a login).
- A login's token expires: keysentry logs in again shortly before its lease ends, and after a
  403 (an expired or revoked token is refused like any other) it logs in again once and
  retries, when that gives a different token.
- After a fork the child makes its own clients (the parent's connections and locks are not
  the child's).

Puts use check-and-set: create only if absent, update only the version just read.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from keysentry.errors import (
    AccessDenied,
    ConfigError,
    ProviderError,
    ProviderUnavailable,
    SecretConflict,
    SecretNotFound,
)
from keysentry.providers.base import Fetched, Health, SecretRef, Stored
from keysentry.secret import Secret

SCHEME = "vault"
OPTIONS = frozenset({"addr", "namespace", "version", "kv"})
_K8S_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
_TIMEOUT = 10

T = TypeVar("T")
ClientKey = tuple[str, str | None]  # (address, namespace)

_clients: dict[ClientKey, Any] = {}
_renew_at: dict[ClientKey, float] = {}  # monotonic time to log in again, for login tokens
_clients_lock = threading.Lock()
_RENEW_EARLY = 0.8  # log in again after this share of the token's lease


def _split(ref: SecretRef) -> tuple[str, str]:
    mount, _, path = ref.location.strip("/").partition("/")
    if not path:
        raise ConfigError(f"{ref}: name the mount and the path, as in vault://secret/prod/openai")
    if ref.field is None:
        raise ConfigError(f"{ref}: name the field, as in vault://secret/prod/openai#api_key")
    return mount, path


def _client_key(ref: SecretRef) -> ClientKey:
    addr = ref.option("addr") or os.environ.get("VAULT_ADDR")
    if not addr:
        raise ConfigError(f"{ref}: no Vault address: add ?addr= or set VAULT_ADDR")
    return addr, ref.option("namespace") or os.environ.get("VAULT_NAMESPACE") or None


def _client(ref: SecretRef) -> Any:
    """The logged-in client for the reference's Vault, logging in (again) when there is
    none yet or its token's lease is nearly over."""
    key = _client_key(ref)
    with _clients_lock:
        client = _clients.get(key)
        if client is None or time.monotonic() >= _renew_at.get(key, float("inf")):
            client = _log_in_locked(ref, key)
        return client


def _log_in_again(ref: SecretRef, refused: Any) -> Any | None:
    """After `refused`'s token was refused: a client with a fresh token (another thread's,
    if it logged in first), or None when logging in again gives the same token (a fixed
    VAULT_TOKEN): retrying with it would only be refused again."""
    key = _client_key(ref)
    with _clients_lock:
        current = _clients.get(key)
        if current is not None and current is not refused:
            return current
        fresh = _log_in_locked(ref, key)
    return None if fresh.token == refused.token else fresh


def _log_in_locked(ref: SecretRef, key: ClientKey) -> Any:
    import hvac

    # VAULT_CLIENT_TIMEOUT is the Vault CLI's own variable for the same setting.
    timeout = float(os.environ.get("VAULT_CLIENT_TIMEOUT") or _TIMEOUT)
    # token="" and never None: with None, hvac reads VAULT_TOKEN or else ~/.vault-token.
    client = hvac.Client(url=key[0], token="", namespace=key[1], timeout=timeout)
    with _translated(ref):
        lease = _log_in(client)
    _clients[key] = client
    if lease:
        _renew_at[key] = time.monotonic() + lease * _RENEW_EARLY
    else:
        _renew_at.pop(key, None)
    return client


def _log_in(client: Any) -> float | None:
    """Give `client` a token from the environment; the token's lease in seconds when a login
    issued it (None for VAULT_TOKEN, whose lease keysentry does not manage)."""
    environ = os.environ
    if environ.get("VAULT_TOKEN"):
        client.token = environ["VAULT_TOKEN"]
        return None
    if environ.get("VAULT_ROLE_ID") and environ.get("VAULT_SECRET_ID"):
        response = client.auth.approle.login(
            role_id=environ["VAULT_ROLE_ID"],
            secret_id=environ["VAULT_SECRET_ID"],
            mount_point=environ.get("VAULT_APPROLE_MOUNT", "approle"),
        )
        return _lease(response)
    if environ.get("VAULT_K8S_ROLE"):
        token_path = environ.get("VAULT_K8S_TOKEN_PATH", _K8S_TOKEN)
        with open(token_path, encoding="utf-8") as handle:
            jwt = handle.read().strip()
        response = client.auth.kubernetes.login(
            environ["VAULT_K8S_ROLE"], jwt, mount_point=environ.get("VAULT_K8S_MOUNT", "kubernetes")
        )
        return _lease(response)
    raise AccessDenied(
        "no Vault credentials: set VAULT_TOKEN, VAULT_ROLE_ID and VAULT_SECRET_ID, or "
        "VAULT_K8S_ROLE (~/.vault-token is never read)"
    )


def _lease(response: Any) -> float | None:
    try:
        seconds = float(response["auth"]["lease_duration"])
    except (KeyError, TypeError, ValueError):
        return None
    return seconds or None  # 0: a token that does not expire


def _with_client(ref: SecretRef, operation: Callable[[Any], T]) -> T:
    """`operation(client)`, its errors translated; after a refusal (a 403 is also what an
    expired or revoked token gets), log in again once and retry with the new token."""
    client = _client(ref)
    try:
        with _translated(ref):
            return operation(client)
    except AccessDenied:
        fresh = _log_in_again(ref, client)
        if fresh is None:
            raise
    with _translated(ref):
        return operation(fresh)


def _reset_after_fork() -> None:
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()
    _renew_at.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


@contextlib.contextmanager
def _translated(ref: SecretRef) -> Iterator[None]:
    import hvac.exceptions as errors
    import requests

    try:
        yield
    except errors.InvalidPath:
        raise SecretNotFound(f"{ref}: no such secret in Vault") from None
    except (errors.Forbidden, errors.Unauthorized) as exc:
        raise AccessDenied(f"{ref}: Vault refused access: {_first(exc)}") from None
    except errors.InvalidRequest as exc:
        if "check-and-set" in str(exc):
            raise SecretConflict(
                f"{ref}: changed in Vault since it was read (check-and-set)"
            ) from None
        raise ProviderError(f"{ref}: Vault rejected the request: {_first(exc)}") from None
    except (
        errors.VaultDown,
        errors.InternalServerError,
        errors.BadGateway,
        errors.RateLimitExceeded,
    ) as exc:
        raise ProviderUnavailable(f"{ref}: Vault is unavailable: {_first(exc)}") from None
    except errors.VaultError as exc:
        raise ProviderError(f"{ref}: Vault error: {_first(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise ProviderUnavailable(f"{ref}: Vault did not answer: {type(exc).__name__}") from None
    except OSError as exc:
        raise AccessDenied(f"{ref}: cannot read the Kubernetes token: {exc.strerror}") from None


def _first(exc: Exception) -> str:
    errors = getattr(exc, "errors", None) or [str(exc)]
    return str(errors[0]).strip().replace("\n", " ").replace("\t", "")


def _read(ref: SecretRef) -> tuple[dict[str, Any], str | None]:
    """The secret's fields and its version (None for KV v1)."""
    mount, path = _split(ref)
    if ref.option("kv") == "1":
        response = _with_client(
            ref, lambda client: client.secrets.kv.v1.read_secret(path, mount_point=mount)
        )
        return dict(response["data"]), None
    version = ref.option("version")
    response = _with_client(
        ref,
        lambda client: client.secrets.kv.v2.read_secret_version(
            path,
            version=int(version) if version else None,
            mount_point=mount,
            raise_on_deleted_version=True,
        ),
    )
    data = response["data"]
    return dict(data["data"] or {}), str(data["metadata"]["version"])


def get(ref: SecretRef) -> Fetched:
    fields, version = _read(ref)
    value = fields.get(str(ref.field))
    if not isinstance(value, str) or not value:
        raise SecretNotFound(f"{ref}: the Vault secret has no field {ref.field!r}")
    source = f"{ref} (version {version})" if version else str(ref)
    return Fetched(Secret(value), source, version)


def put(ref: SecretRef, value: str, *, tags: Mapping[str, str], overwrite: bool) -> Stored:
    mount, path = _split(ref)
    field = str(ref.field)
    try:
        latest = {k: v for k, v in ref.options.items() if k != "version"}
        fields, version = _read(ref._replace(options=latest))
    except SecretNotFound:
        fields, version = {}, None
    exists = bool(fields)
    if fields.get(field) == value:
        return Stored(version, created=False, changed=False)
    if field in fields and not overwrite:
        raise SecretConflict(f"{ref}: Vault already holds another value (use --overwrite)")
    if ref.option("kv") == "1":
        _with_client(
            ref,
            lambda client: client.secrets.kv.v1.create_or_update_secret(
                path, {**fields, field: value}, mount_point=mount
            ),
        )
        return Stored(None, created=not exists, changed=True)
    # Check-and-set: 0 creates only; N updates only the version just read.
    cas = int(version) if exists and version else 0
    response = _with_client(
        ref,
        lambda client: client.secrets.kv.v2.create_or_update_secret(
            path, {**fields, field: value}, cas=cas, mount_point=mount
        ),
    )
    if tags:
        _with_client(
            ref,
            lambda client: client.secrets.kv.v2.update_metadata(
                path, custom_metadata=dict(tags), mount_point=mount
            ),
        )
    return Stored(str(response["data"]["version"]), created=not exists, changed=True)


def describe(ref: SecretRef) -> dict[str, object]:
    mount, path = _split(ref)
    if ref.option("kv") == "1":
        return {"reference": str(ref), "kv": 1}
    meta = _with_client(
        ref, lambda client: client.secrets.kv.v2.read_secret_metadata(path, mount_point=mount)
    )["data"]
    return {
        "reference": str(ref),
        "current_version": meta.get("current_version"),
        "versions": sorted(meta.get("versions", {}), key=int),
        "custom_metadata": meta.get("custom_metadata") or {},
    }


def health(ref: SecretRef) -> Health:
    try:
        status = _with_client(ref, lambda client: client.sys.read_health_status(method="GET"))
    except ProviderError as exc:
        return Health(False, str(exc))
    if isinstance(status, dict):
        return Health(not status.get("sealed", False), "Vault answered, unsealed")
    return Health(False, f"Vault answered {getattr(status, 'status_code', '?')}")
