"""The OpenAI API server (tests/servers/openai_api.py) as fixtures, shared by the verifier's
and the runtime guard's tests: `server` for the verifier (OPENAI_BASE_URL points at it, no
leaking org/project/key variables, fresh breakers), `api` and `key` for the runtime client (a
live project key in OPENAI_API_KEY, no config, fresh guard state)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from keygen import key_of
from keysentry import loader
from keysentry.resilience import _breakers
from keysentry.runtime import budget as budgets
from keysentry.scanner.keys import KeyKind
from servers.openai_api import OpenAIServer


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    running = OpenAIServer().start()
    monkeypatch.setenv("OPENAI_BASE_URL", running.base_url)
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    _breakers.clear()
    yield running
    running.stop()


@pytest.fixture
def api() -> Iterator[OpenAIServer]:
    running = OpenAIServer().start()
    yield running
    running.stop()


@pytest.fixture
def key(
    api: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: random.Random
) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_BASE_URL", "KEYSENTRY_ENV"):
        monkeypatch.delenv(name, raising=False)
    value = key_of(KeyKind.PROJECT, rng).key
    monkeypatch.setenv("OPENAI_API_KEY", value)
    api.org.add_key(value, "proj_app")
    loader.configure(None)
    _breakers.clear()
    budgets._counters.clear()
    yield value
    loader.configure(None)
    budgets._counters.clear()
