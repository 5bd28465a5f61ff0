"""The runtime loader: environments from config, every store, caching, single flight,
stale-if-error, and no key in any message."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from keygen import key_of
from keysentry import loader
from keysentry.config import load_config
from keysentry.errors import ConfigError, ProviderUnavailable, SecretNotFound
from keysentry.providers.base import Fetched
from keysentry.providers.cache import SecretCache
from keysentry.scanner.keys import KeyKind
from keysentry.secret import Secret
from servers.azure_keyvault import KeyVaultServer
from stores import keyvault_client, write_config


@pytest.fixture(autouse=True)
def fresh_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSENTRY_ENV", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    loader.configure(None)
    yield
    loader.configure(None)


def test_one_line_of_config_switches_the_store(
    tmp_path: Path, rng: random.Random, aws: Any, vault: Any, keyvault: KeyVaultServer
) -> None:
    keys = {name: key_of(KeyKind.PROJECT, rng).key for name in ("aws", "vault", "azure", "dot")}
    aws.create_secret(Name="prod/openai", SecretString=json.dumps({"OPENAI_API_KEY": keys["aws"]}))
    vault.secrets.kv.v2.create_or_update_secret(
        "staging/openai", {"api_key": keys["vault"]}, mount_point="secret"
    )
    keyvault_client(keyvault).set_secret("OPENAI-API-KEY", keys["azure"])
    (tmp_path / ".env.development").write_text(f"OPENAI_API_KEY={keys['dot']}\n")
    stores = {
        "aws": "aws-sm://prod/openai#OPENAI_API_KEY",
        "vault": "vault://secret/staging/openai#api_key",
        "azure": "azure-kv://keysentry-test/OPENAI_API_KEY",
        "dot": "dotenv://.env.development#OPENAI_API_KEY",
    }
    for store, ref in stores.items():
        write_config(tmp_path, {"production": {"OPENAI_API_KEY": ref}})
        loader.configure(None)
        key = loader.load_key(env="production")
        assert key.reveal() == keys[store], store
        assert keys[store] not in repr(key) + str(key)


def test_the_environment_comes_from_keysentry_env(
    tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev, prod = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    (tmp_path / ".env.dev").write_text(f"OPENAI_API_KEY={dev}\n")
    (tmp_path / ".env.prod").write_text(f"OPENAI_API_KEY={prod}\n")
    write_config(
        tmp_path,
        {
            "development": {"OPENAI_API_KEY": "dotenv://.env.dev#OPENAI_API_KEY"},
            "production": {"OPENAI_API_KEY": "dotenv://.env.prod#OPENAI_API_KEY"},
        },
    )
    monkeypatch.setenv("KEYSENTRY_ENV", "production")
    assert loader.load_key().reveal() == prod
    assert loader.load_key(env="development").reveal() == dev


def test_without_an_environment_the_process_environment_then_dotenv(
    tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_file, from_env = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={from_file}\n")
    assert loader.fetch().source == "dotenv://.env#OPENAI_API_KEY"
    loader.configure(None)
    monkeypatch.setenv("OPENAI_API_KEY", from_env)
    assert loader.load_key().reveal() == from_env
    (tmp_path / ".env").unlink()
    monkeypatch.delenv("OPENAI_API_KEY")
    loader.configure(None)
    with pytest.raises(SecretNotFound, match="OPENAI_API_KEY is not set for this process"):
        loader.load_key()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"production": {"OPENAI_API_KEY": "s3://bucket/key"}},
            "[environments.production].OPENAI_API_KEY: unknown scheme s3://",
        ),
        (
            {"production": {"OPENAI_API_KEY": "aws-sm://x?regoin=us-east-1"}},
            "has no option 'regoin'",
        ),
    ],
)
def test_malformed_references_name_file_environment_and_key(
    tmp_path: Path, table: dict[str, dict[str, str]], message: str
) -> None:
    write_config(tmp_path, table)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        loader.load_key(env="production")
    assert str(err.value).startswith(str(tmp_path / "keysentry.toml"))


def test_an_unknown_environment_lists_the_known_ones(tmp_path: Path) -> None:
    write_config(tmp_path, {"production": {"OPENAI_API_KEY": "env://X"}})
    with pytest.raises(ConfigError, match=r"no environment 'prod' \(known: production\)"):
        loader.load_key(env="prod")


def test_a_hundred_threads_on_a_cold_cache_make_one_request(
    tmp_path: Path, rng: random.Random, keyvault: KeyVaultServer
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    keyvault_client(keyvault).set_secret("OPENAI-API-KEY", key)
    write_config(
        tmp_path, {"production": {"OPENAI_API_KEY": "azure-kv://keysentry-test/OPENAI_API_KEY"}}
    )
    loader.current_config()
    keyvault.requests.clear()
    keyvault.delay = 0.2  # long enough that every thread arrives while the fetch runs
    start = threading.Barrier(100)
    results: list[str] = []

    def worker() -> None:
        start.wait()
        results.append(loader.load_key(env="production").reveal())

    threads = [threading.Thread(target=worker) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [key] * 100
    assert keyvault.requests["GET /secrets/OPENAI-API-KEY"] == 1


def test_stale_if_error_serves_the_last_value_with_a_warning_then_fails(
    caplog: pytest.LogCaptureFixture, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    cache = SecretCache(ttl=0.05, stale_if_error=0.3)
    answers: list[Fetched | Exception] = [Fetched(Secret(key), "test://k")]

    def fetch() -> Fetched:
        answer = answers[-1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert cache.get("test://k", fetch).secret.reveal() == key
    answers.append(ProviderUnavailable("test://k: the store is down"))
    time.sleep(0.06)
    with caplog.at_level(logging.WARNING, logger="keysentry"):
        assert cache.get("test://k", fetch).secret.reveal() == key
    assert "serving the cached value of test://k" in caplog.text
    assert key not in caplog.text
    time.sleep(0.4)
    with pytest.raises(ProviderUnavailable, match="the store is down"):
        cache.get("test://k", fetch)


def test_refresh_reads_the_store_again(
    tmp_path: Path, rng: random.Random, keyvault: KeyVaultServer
) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    client = keyvault_client(keyvault)
    client.set_secret("OPENAI-API-KEY", old)
    write_config(tmp_path, {"p": {"OPENAI_API_KEY": "azure-kv://keysentry-test/OPENAI_API_KEY"}})
    assert loader.load_key(env="p").reveal() == old
    client.set_secret("OPENAI-API-KEY", new)  # rotated
    assert loader.load_key(env="p").reveal() == old  # still cached
    loader.refresh("OPENAI_API_KEY", env="p")
    assert loader.load_key(env="p").reveal() == new


def test_the_load_section_of_the_config(tmp_path: Path) -> None:
    (tmp_path / "keysentry.toml").write_text("[load]\nttl_seconds = 'soon'\n")
    with pytest.raises(ConfigError, match=r"\[load\].ttl_seconds must be a number"):
        loader.configure(load_config())


def test_no_secret_in_any_provider_error(tmp_path: Path, rng: random.Random, aws: Any) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    aws.create_secret(Name="plain", SecretString=key)
    write_config(tmp_path, {"p": {"OPENAI_API_KEY": "aws-sm://plain#FIELD"}})
    with pytest.raises(Exception) as caught:
        loader.load_key(env="p")
    assert key not in str(caught.value) and key not in repr(caught.value)
