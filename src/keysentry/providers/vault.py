"""`vault://MOUNT/PATH#FIELD`: HashiCorp Vault (or OpenBao) KV, through hvac.

Options: `addr` (else VAULT_ADDR), `namespace` (else VAULT_NAMESPACE, which hvac itself does
not read), `version` (KV v2), `kv` (`2`, the default, or `1`). Requests time out after
VAULT_CLIENT_TIMEOUT seconds (10 by default). Authentication, from the
environment: VAULT_TOKEN; else AppRole (VAULT_ROLE_ID and VAULT_SECRET_ID, mount
VAULT_APPROLE_MOUNT or `approle`); else Kubernetes (VAULT_K8S_ROLE, the service account token
at VAULT_K8S_TOKEN_PATH or the standard path, mount VAULT_K8S_MOUNT or `kubernetes`). The
token is always passed explicitly: `~/.vault-token` is never read behind the user's back.
Puts use check-and-set: create only if absent, update only the version just read.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

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

_clients: dict[tuple[str, str | None], Any] = {}
_clients_lock = threading.Lock()


def _split(ref: SecretRef) -> tuple[str, str]:
    mount, _, path = ref.location.strip("/").partition("/")
    if not path:
        raise ConfigError(f"{ref}: name the mount and the path, as in vault://secret/prod/openai")
    if ref.field is None:
        raise ConfigError(f"{ref}: name the field, as in vault://secret/prod/openai#api_key")
    return mount, path


def _client(ref: SecretRef) -> Any:
    addr = ref.option("addr") or os.environ.get("VAULT_ADDR")
    if not addr:
        raise ConfigError(f"{ref}: no Vault address: add ?addr= or set VAULT_ADDR")
    namespace = ref.option("namespace") or os.environ.get("VAULT_NAMESPACE") or None
    key = (addr, namespace)
    with _clients_lock:
        if key not in _clients:
            import hvac

            # VAULT_CLIENT_TIMEOUT is the Vault CLI's own variable for the same setting.
            timeout = float(os.environ.get("VAULT_CLIENT_TIMEOUT") or _TIMEOUT)
            client = hvac.Client(url=addr, token=os.environ.get("VAULT_TOKEN") or None,
                                 namespace=namespace, timeout=timeout)  # fmt: skip
            with _translated(ref):
                _log_in(client)
            _clients[key] = client
        return _clients[key]


def _log_in(client: Any) -> None:
    if client.token:
        return
    environ = os.environ
    if environ.get("VAULT_ROLE_ID") and environ.get("VAULT_SECRET_ID"):
        client.auth.approle.login(
            role_id=environ["VAULT_ROLE_ID"],
            secret_id=environ["VAULT_SECRET_ID"],
            mount_point=environ.get("VAULT_APPROLE_MOUNT", "approle"),
        )
        return
    if environ.get("VAULT_K8S_ROLE"):
        token_path = environ.get("VAULT_K8S_TOKEN_PATH", _K8S_TOKEN)
        with open(token_path, encoding="utf-8") as handle:
            jwt = handle.read().strip()
        client.auth.kubernetes.login(
            environ["VAULT_K8S_ROLE"], jwt, mount_point=environ.get("VAULT_K8S_MOUNT", "kubernetes")
        )
        return
    raise AccessDenied("no Vault credentials: set VAULT_TOKEN, VAULT_ROLE_ID and VAULT_SECRET_ID, "
                       "or VAULT_K8S_ROLE")  # fmt: skip


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
            raise SecretConflict(f"{ref}: changed in Vault since it was read (check-and-set)"
                                 ) from None  # fmt: skip
        raise ProviderError(f"{ref}: Vault rejected the request: {_first(exc)}") from None
    except (errors.VaultDown, errors.InternalServerError, errors.BadGateway,
            errors.RateLimitExceeded) as exc:  # fmt: skip
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
    client = _client(ref)
    with _translated(ref):
        if ref.option("kv") == "1":
            return dict(client.secrets.kv.v1.read_secret(path, mount_point=mount)["data"]), None
        version = ref.option("version")
        response = client.secrets.kv.v2.read_secret_version(
            path, version=int(version) if version else None, mount_point=mount,
            raise_on_deleted_version=True,
        )  # fmt: skip
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
        raise SecretConflict(f"{ref}: Vault already holds another value (use overwrite)")
    client = _client(ref)
    with _translated(ref):
        if ref.option("kv") == "1":
            client.secrets.kv.v1.create_or_update_secret(path, {**fields, field: value},
                                                         mount_point=mount)  # fmt: skip
            return Stored(None, created=not exists, changed=True)
        # Check-and-set: 0 creates only; N updates only the version just read.
        cas = int(version) if exists and version else 0
        response = client.secrets.kv.v2.create_or_update_secret(
            path, {**fields, field: value}, cas=cas, mount_point=mount
        )
        if tags:
            client.secrets.kv.v2.update_metadata(path, custom_metadata=dict(tags),
                                                 mount_point=mount)  # fmt: skip
    return Stored(str(response["data"]["version"]), created=not exists, changed=True)


def describe(ref: SecretRef) -> dict[str, object]:
    mount, path = _split(ref)
    if ref.option("kv") == "1":
        return {"reference": str(ref), "kv": 1}
    with _translated(ref):
        meta = _client(ref).secrets.kv.v2.read_secret_metadata(path, mount_point=mount)["data"]
    return {
        "reference": str(ref),
        "current_version": meta.get("current_version"),
        "versions": sorted(meta.get("versions", {}), key=int),
        "custom_metadata": meta.get("custom_metadata") or {},
    }


def health(ref: SecretRef) -> Health:
    try:
        client = _client(ref)
        with _translated(ref):
            status = client.sys.read_health_status(method="GET")
    except ProviderError as exc:
        return Health(False, str(exc))
    if isinstance(status, dict):
        return Health(not status.get("sealed", False), "Vault answered, unsealed")
    return Health(False, f"Vault answered {getattr(status, 'status_code', '?')}")
