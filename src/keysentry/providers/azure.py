"""`azure-kv://VAULT/NAME`: Azure Key Vault secrets, through azure-keyvault-secrets.

VAULT is the vault's name (`https://VAULT.vault.azure.net`) or a full `https://` URL. Options:
`version`. Key Vault names allow only `[0-9A-Za-z-]`: an `_` in NAME is mapped to `-`
(`OPENAI_API_KEY` is stored as `OPENAI-API-KEY`). Credentials: azure-identity's
DefaultAzureCredential unless the application installs its own with `use_client_factory`.

A put on a name that is deleted but recoverable (soft delete) fails with SecretConflict and
says so, unless asked to recover it first (`recover_deleted=True`).

After a fork the child starts with no clients and a fresh lock (a parent's thread may have
held it while making a client); the application's client factory is kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
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

SCHEME = "azure-kv"
OPTIONS = frozenset({"version"})
_NAME = re.compile(r"[A-Za-z][0-9A-Za-z-]{0,126}\Z")

ClientFactory = Callable[[str], Any]  # vault URL -> SecretClient

_factory: ClientFactory | None = None
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def use_client_factory(factory: ClientFactory | None) -> None:
    """Make SecretClients with `factory(vault_url)`: your own credential or transport. None
    restores the default (DefaultAzureCredential)."""
    global _factory
    with _clients_lock:
        _factory = factory
        _clients.clear()


def secret_name(name: str) -> str:
    """A Key Vault secret name for `name`: `_` becomes `-`; the rest must already fit."""
    mapped = name.replace("_", "-")
    if not _NAME.match(mapped):
        raise ConfigError(
            f"{name!r} cannot be a Key Vault secret name: letters, digits and "
            "dashes only, starting with a letter, at most 127"
        )
    return mapped


def _split(ref: SecretRef) -> tuple[str, str]:
    vault, _, name = ref.location.rpartition("/")
    if not vault or not name:
        raise ConfigError(f"{ref}: name the vault and the secret: azure-kv://my-vault/name")
    url = vault if vault.startswith("https://") else f"https://{vault}.vault.azure.net"
    return url, secret_name(name)


def _client(url: str) -> Any:
    with _clients_lock:
        if url not in _clients:
            if _factory is not None:
                _clients[url] = _factory(url)
            else:
                from azure.identity import DefaultAzureCredential
                from azure.keyvault.secrets import SecretClient

                _clients[url] = SecretClient(url, DefaultAzureCredential())
        return _clients[url]


def _reset_after_fork() -> None:
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


@contextlib.contextmanager
def _translated(ref: SecretRef) -> Iterator[None]:
    from azure.core import exceptions as az

    try:
        yield
    except az.ResourceNotFoundError:
        raise SecretNotFound(f"{ref}: no such secret in Key Vault") from None
    except az.ClientAuthenticationError as exc:
        raise AccessDenied(f"{ref}: Key Vault authentication failed: {_reason(exc)}") from None
    except az.ResourceExistsError as exc:
        raise SecretConflict(f"{ref}: {_reason(exc)}") from None
    except az.HttpResponseError as exc:
        status = exc.status_code or 0
        if status == 403:
            raise AccessDenied(f"{ref}: Key Vault refused access: {_reason(exc)}") from None
        if status == 429 or status >= 500:
            raise ProviderUnavailable(f"{ref}: Key Vault is unavailable ({status})") from None
        raise ProviderError(f"{ref}: Key Vault error {status}: {_reason(exc)}") from None
    except (az.ServiceRequestError, az.ServiceResponseError) as exc:
        raise ProviderUnavailable(
            f"{ref}: Key Vault did not answer: {type(exc).__name__}"
        ) from None


def _reason(exc: Any) -> str:
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None) or getattr(exc, "message", None) or str(exc)
    return str(message).splitlines()[0]


def get(ref: SecretRef) -> Fetched:
    url, name = _split(ref)
    with _translated(ref):
        bundle = _client(url).get_secret(name, ref.option("version"))
    if not bundle.value:
        raise SecretNotFound(f"{ref}: the Key Vault secret is empty")
    version = bundle.properties.version
    return Fetched(Secret(bundle.value), f"{ref} (version {version})", version)


def put(
    ref: SecretRef,
    value: str,
    *,
    tags: Mapping[str, str],
    overwrite: bool,
    recover_deleted: bool = False,
) -> Stored:
    url, name = _split(ref)
    client = _client(url)
    try:
        with _translated(ref):
            current = client.get_secret(name).value
    except SecretNotFound:
        current = None
    if current == value:
        return Stored(None, created=False, changed=False)
    if current is not None and not overwrite:
        raise SecretConflict(f"{ref}: Key Vault already holds another value (use --overwrite)")
    try:
        with _translated(ref):
            stored = client.set_secret(name, value, tags=dict(tags), content_type="text/plain")
    except SecretConflict:
        if not recover_deleted:
            raise SecretConflict(
                f"{ref}: the name is deleted but recoverable (soft delete): recover it "
                "(recover_deleted) or purge it in Azure, then store again"
            ) from None
        with _translated(ref):
            client.begin_recover_deleted_secret(name).wait()
            stored = client.set_secret(name, value, tags=dict(tags), content_type="text/plain")
    return Stored(stored.properties.version, created=current is None, changed=True)


def describe(ref: SecretRef) -> dict[str, object]:
    url, name = _split(ref)
    with _translated(ref):
        versions = list(_client(url).list_properties_of_secret_versions(name))
    return {
        "reference": str(ref),
        "name": name,
        "versions": [v.version for v in versions],
        "tags": (versions[-1].tags or {}) if versions else {},
    }


def health(ref: SecretRef) -> Health:
    url, _ = _split(ref)
    try:
        with _translated(ref):
            next(iter(_client(url).list_properties_of_secrets(max_page_size=1)), None)
    except ProviderError as exc:
        return Health(False, str(exc))
    return Health(True, "Key Vault answered")
