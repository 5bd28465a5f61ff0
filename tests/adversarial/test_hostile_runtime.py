"""A hostile runtime: a fork (gunicorn, Celery prefork) while another thread is in the middle of
loading a key or calling the API, and a `~/.vault-token` that keysentry must never use.

A child forked at the wrong moment inherits every lock a parent's thread held, and no thread to
release it: each test forks while a thread is parked inside the code that holds the lock, and
the child must load the key (or call the API) within a timeout. Every test ends with
`assert_nowhere`: the key is in no output, exception or report.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from leaks import assert_nowhere

from keygen import key_of
from keysentry import loader
from keysentry.config import load_config
from keysentry.providers import azure
from keysentry.providers import vault as vault_store
from keysentry.scanner.keys import KeyKind
from keysentry.secret import Secret
from keysentry.verify import client as api
from servers.azure_keyvault import KeyVaultServer
from servers.openai_api import OpenAIServer
from stores import BAO_TOKEN, keyvault_client, write_config

CHILD_TIMEOUT = 20.0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def in_a_forked_child(action: Callable[[], str]) -> tuple[int | str, str]:
    """Fork; the child runs `action` and sends back what it returned (or the error it
    raised). (The child's exit status or "deadlocked", that text.)"""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(reading)
        signal.alarm(int(CHILD_TIMEOUT) + 10)  # a deadlocked child must not outlive the test
        try:
            text, code = action(), 0
        except BaseException as exc:
            text, code = f"{type(exc).__name__}: {exc}", 1
        os.write(writing, text.encode("utf-8", "replace"))
        os._exit(code)
    os.close(writing)
    deadline = time.monotonic() + CHILD_TIMEOUT
    status: int | str = "deadlocked"
    while time.monotonic() < deadline:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    with os.fdopen(reading, "rb") as pipe:
        return status, pipe.read().decode("utf-8", "replace")


class Parked:
    """A thread parked at a blocking point until released: `wrap(f)` is `f`, except that it
    waits there when called from the parked thread (never from a forked child's thread)."""

    def __init__(self) -> None:
        self.entered, self.released = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def parked(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is self.thread:
                self.entered.set()
                self.released.wait(30)
            return function(*args, **kwargs)

        return parked

    def start(self, target: Callable[[], object]) -> None:
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        assert self.entered.wait(10), "the thread never reached the blocking point"

    def release(self) -> None:
        self.released.set()
        assert self.thread is not None
        self.thread.join(30)


@pytest.fixture
def parked() -> Iterator[Parked]:
    point = Parked()
    yield point
    point.released.set()


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSENTRY_ENV", raising=False)
    loader.configure(None)
    yield tmp_path
    loader.configure(None)


def configure(directory: Path, reference: str) -> None:
    write_config(directory, {"production": {"OPENAI_API_KEY": reference}})
    loader.configure(None)


def load_in_child() -> str:
    return loader.load_key(env="production").redacted


def test_a_fork_during_a_cold_aws_load_does_not_deadlock_the_child(
    aws: Any,
    production: Path,
    parked: Parked,
    rng: random.Random,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3.session

    key = key_of(KeyKind.PROJECT, rng).key
    aws.create_secret(Name="prod/openai", SecretString=json.dumps({"OPENAI_API_KEY": key}))
    configure(production, "aws-sm://prod/openai#OPENAI_API_KEY")
    # Parked while making the boto3 client: inside the provider's client lock.
    monkeypatch.setattr(boto3.session.Session, "client", parked.wrap(boto3.session.Session.client))
    parked.start(lambda: loader.load_key(env="production"))
    status, report = in_a_forked_child(load_in_child)
    parked.release()
    assert (status, report) == (0, Secret(key).redacted)
    assert loader.load_key(env="production").reveal() == key  # the parent carries on
    assert_nowhere(key, report)


def test_a_fork_while_the_config_is_being_read_does_not_deadlock_the_child(
    production: Path, parked: Parked, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (production / ".env.production").write_text(f"OPENAI_API_KEY={key}\n")
    configure(production, "dotenv://.env.production#OPENAI_API_KEY")
    monkeypatch.setattr(loader, "load_config", parked.wrap(load_config))
    parked.start(lambda: loader.load_key(env="production"))  # inside loader's config lock
    status, report = in_a_forked_child(load_in_child)
    parked.release()
    assert (status, report) == (0, Secret(key).redacted)
    assert_nowhere(key, report)


def test_a_fork_during_a_vault_login_does_not_deadlock_the_child(
    vault: Any,
    production: Path,
    parked: Parked,
    rng: random.Random,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    vault.secrets.kv.v2.create_or_update_secret(
        "fork/openai", {"api_key": key}, mount_point="secret"
    )
    configure(production, "vault://secret/fork/openai#api_key")
    monkeypatch.setattr(vault_store, "_log_in", parked.wrap(vault_store._log_in))
    parked.start(lambda: loader.load_key(env="production"))
    status, report = in_a_forked_child(load_in_child)
    parked.release()
    assert (status, report) == (0, Secret(key).redacted)
    assert_nowhere(key, report)


def test_a_fork_while_a_key_vault_client_is_made_does_not_deadlock_the_child(
    keyvault: KeyVaultServer, production: Path, parked: Parked, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    keyvault_client(keyvault).set_secret("OPENAI-API-KEY", key)
    configure(production, "azure-kv://keysentry-test/OPENAI_API_KEY")
    assert azure._factory is not None
    azure.use_client_factory(parked.wrap(azure._factory))
    parked.start(lambda: loader.load_key(env="production"))
    status, report = in_a_forked_child(load_in_child)
    parked.release()
    assert (status, report) == (0, Secret(key).redacted)
    assert_nowhere(key, report)


def test_a_fork_during_a_half_open_trial_leaves_the_child_a_working_breaker(
    rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = OpenAIServer().start()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        api._breakers.clear()
        key = key_of(KeyKind.PROJECT, rng).key
        server.org.project("proj_a")
        server.org.add_key(key, "proj_a")
        client = api.ApiClient(Secret(key), attempts=1)
        client.breaker.threshold, client.breaker.cooldown = 1, 0.2
        server.inject("/v1/models", 500)
        with pytest.raises(Exception, match="500"):
            client.call(lambda sdk: sdk.models.list())
        time.sleep(0.25)
        server.delay = 1.0  # the trial is slow: its thread is inside it at the fork
        trial = threading.Thread(target=lambda: client.call(lambda sdk: sdk.models.list()))
        trial.start()
        time.sleep(0.3)
        holder_ready, holder_done = threading.Event(), threading.Event()

        def hold_the_lock() -> None:  # a thread preempted inside the breaker's lock
            with client.breaker._lock:
                holder_ready.set()
                holder_done.wait(30)

        holder = threading.Thread(target=hold_the_lock, daemon=True)
        holder.start()
        assert holder_ready.wait(10)
        status, report = in_a_forked_child(
            lambda: str(len(api.ApiClient(Secret(key)).call(lambda sdk: sdk.models.list()).data))
        )
        holder_done.set()
        trial.join(30)
        assert (status, report) == (0, "2")
        assert_nowhere(key, report)
    finally:
        api._breakers.clear()
        server.stop()


def test_a_vault_token_file_in_home_is_never_used(
    vault: Any, production: Path, cli: Any, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    vault.secrets.kv.v2.create_or_update_secret(
        "home/openai", {"api_key": key}, mount_point="secret"
    )
    configure(production, "vault://secret/home/openai#api_key")
    home = production / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("VAULT_TOKEN")
    (home / ".vault-token").write_text(BAO_TOKEN)  # a root token planted in HOME
    planted = cli("get", "--env", "production")
    assert planted.code == 2 and "no Vault credentials" in planted.err
    (home / ".vault-token").write_text("s.someone-elses-token")
    monkeypatch.setenv("VAULT_TOKEN", BAO_TOKEN)  # the documented way
    vault_store._clients.clear()
    loader.configure(None)
    shown = cli("get", "--env", "production")
    assert shown.code == 0 and shown.out.strip() == f"OPENAI_API_KEY = {Secret(key).redacted}"
    assert_nowhere(key, planted.out, planted.err, shown.out, shown.err)
