"""azure-kv://: Azure Key Vault through the real azure-keyvault-secrets SDK, against the
project's wire-faithful data-plane server (tests/servers/azure_keyvault.py)."""

from __future__ import annotations

import random

import pytest

from keygen import key_of
from keysentry.errors import (
    AccessDenied,
    ConfigError,
    ProviderUnavailable,
    SecretConflict,
    SecretNotFound,
)
from keysentry.providers import azure
from keysentry.providers.base import parse_ref
from keysentry.scanner.keys import KeyKind
from servers.azure_keyvault import KeyVaultServer
from stores import keyvault_client

REF = "azure-kv://keysentry-test/OPENAI_API_KEY"


def test_names_map_underscores_and_versions_are_kept(
    keyvault: KeyVaultServer, rng: random.Random
) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    client = keyvault_client(keyvault)
    first = client.set_secret("OPENAI-API-KEY", old).properties.version
    client.set_secret("OPENAI-API-KEY", new)
    fetched = azure.get(parse_ref(REF))
    assert fetched.secret.reveal() == new and fetched.version != first
    assert azure.get(parse_ref(f"{REF}?version={first}")).secret.reveal() == old


def test_the_challenge_is_answered_by_the_sdk(keyvault: KeyVaultServer, rng: random.Random) -> None:
    keyvault_client(keyvault).set_secret("k", "v")
    azure.get(parse_ref("azure-kv://keysentry-test/k"))
    assert keyvault.requests["GET /secrets/k"] == 1  # the 401 challenge is not counted


def test_put_with_tags_content_type_and_no_overwrite(
    keyvault: KeyVaultServer, rng: random.Random
) -> None:
    key, other = key_of(KeyKind.ADMIN, rng).key, key_of(KeyKind.ADMIN, rng).key
    ref = parse_ref(REF)
    stored = azure.put(ref, key, tags={"env": "production"}, overwrite=False)
    assert stored.created and stored.changed
    assert not azure.put(ref, key, tags={}, overwrite=False).changed
    with pytest.raises(SecretConflict, match="another value"):
        azure.put(ref, other, tags={}, overwrite=False)
    azure.put(ref, other, tags={"env": "production"}, overwrite=True)
    bundle = keyvault_client(keyvault).get_secret("OPENAI-API-KEY")
    assert bundle.properties.content_type == "text/plain"
    assert bundle.properties.tags == {"env": "production"}
    assert len(azure.describe(ref)["versions"]) == 2  # type: ignore[arg-type]


def test_a_deleted_but_recoverable_name_is_a_clear_choice(
    keyvault: KeyVaultServer, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    client = keyvault_client(keyvault)
    client.set_secret("OPENAI-API-KEY", "old")
    client.begin_delete_secret("OPENAI-API-KEY").wait()
    with pytest.raises(SecretConflict, match="deleted but recoverable"):
        azure.put(parse_ref(REF), key, tags={}, overwrite=False)
    stored = azure.put(parse_ref(REF), key, tags={}, overwrite=True, recover_deleted=True)
    assert stored.changed
    assert azure.get(parse_ref(REF)).secret.reveal() == key


def test_paged_listing_through_health(keyvault: KeyVaultServer) -> None:
    client = keyvault_client(keyvault)
    for index in range(5):
        client.set_secret(f"s{index}", "v")
    assert len(list(client.list_properties_of_secrets())) == 5  # three pages of two
    assert azure.health(parse_ref(REF)).ok


def test_missing_denied_down_and_bad_names(keyvault: KeyVaultServer) -> None:
    with pytest.raises(SecretNotFound):
        azure.get(parse_ref("azure-kv://keysentry-test/nope"))
    with pytest.raises(ConfigError, match="cannot be a Key Vault secret name"):
        azure.get(parse_ref("azure-kv://keysentry-test/has.dot"))
    keyvault.refused_tokens.add("keysentry-test-token")
    with pytest.raises(AccessDenied, match="not authorized"):
        azure.get(parse_ref(REF))
    keyvault.refused_tokens.clear()
    keyvault.next_statuses += [503] * 5
    with pytest.raises(ProviderUnavailable):
        azure.get(parse_ref(REF))
