"""keysentry.openai_client: the real openai SDK over HTTP to the project's OpenAI server; a
rotated key is picked up after one 401."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keygen import key_of
from keysentry import loader, openai_client
from keysentry.scanner.keys import KeyKind
from servers.azure_keyvault import KeyVaultServer
from servers.openai_api import OpenAIServer
from stores import keyvault_client, write_config


@pytest.fixture
def production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keyvault: KeyVaultServer
) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    write_config(
        tmp_path, {"production": {"OPENAI_API_KEY": "azure-kv://keysentry-test/OPENAI_API_KEY"}}
    )
    loader.configure(None)
    yield keyvault_client(keyvault)
    loader.configure(None)


def test_the_client_uses_the_environments_key(
    api: OpenAIServer, production: Any, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    production.set_secret("OPENAI-API-KEY", key)
    api.org.add_key(key, "proj_app")
    client = openai_client("production", base_url=api.base_url)
    assert [m.id for m in client.models.list()] == ["gpt-4o", "gpt-4o-mini"]
    assert client.timeout == 30.0 and client.max_retries == 0  # the guard retries, not the SDK


def test_a_rotated_key_is_read_again_after_one_401(
    api: OpenAIServer, production: Any, rng: random.Random
) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    production.set_secret("OPENAI-API-KEY", old)
    api.org.add_key(old, "proj_app")
    client = openai_client("production", base_url=api.base_url)
    client.models.list()
    production.set_secret("OPENAI-API-KEY", new)  # rotation: the old key is revoked
    del api.org.keys[old]
    api.org.add_key(new, "proj_app")
    assert len(client.models.list().data) == 2
    assert api.requests["GET /v1/models"] == 3  # ok, 401 with the old key, ok with the new


def test_a_refused_key_that_was_not_rotated_fails_without_showing_it(
    api: OpenAIServer, production: Any, rng: random.Random
) -> None:
    import openai

    key = key_of(KeyKind.PROJECT, rng).key
    production.set_secret("OPENAI-API-KEY", key)
    client = openai_client("production", base_url=api.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.code == "invalid_api_key"
    assert key not in str(caught.value)
    assert api.requests["GET /v1/models"] == 1
