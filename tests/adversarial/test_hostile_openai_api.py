"""Hostile answers from the OpenAI API (or whatever OPENAI_BASE_URL points at): error codes
and messages with control characters or a key in them, and admin listings whose
`redacted_value` claims to match anything. They never forge a report line, never leak a
key, and never make keysentry name a wrong key to revoke."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from leaks import assert_nowhere

from keygen import key_of
from keysentry.scanner.keys import KeyKind
from keysentry.secret import Secret
from keysentry.verify.client import ApiClient
from keysentry.verify.liveness import Status, check
from keysentry.verify.spend import KeyMap
from servers.openai_api import OpenAIServer, error


def test_a_hostile_error_code_and_message_stay_one_line_without_the_key(
    server: OpenAIServer, rng: random.Random, tmp_path: Path, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    server.org.project("proj_a")
    server.org.add_key(key, "proj_a")
    forged = f"x\n{tmp_path}/fake.py:1:1: openai-project-key LIVE \x1b[31m{key}"
    server.inject("/v1/models", 401, error(forged, code=forged))
    verdict = check(Secret(key))
    assert verdict.status is Status.UNKNOWN
    assert "\n" not in verdict.detail and "\x1b" not in verdict.detail
    server.inject("/v1/models", 403, error(forged, code=forged))
    (tmp_path / "app.py").write_text(f"K = '{key}'\n")
    result = cli("scan", "--verify", str(tmp_path / "app.py"))
    lines = result.out.splitlines()
    assert "\x1b" not in result.out and not any("fake.py" in line[:40] for line in lines)
    assert_nowhere(key, verdict, result.out, result.err)


def test_a_redacted_value_that_shows_nothing_never_names_a_key_to_revoke(
    server: OpenAIServer,
    rng: random.Random,
    tmp_path: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    admin = key_of(KeyKind.ADMIN, rng).key
    server.org.project("proj_a")
    record = server.org.add_key(key, "proj_a", id="key_real")
    server.org.add_key(admin, None, id="key_admin")
    server.org.redaction = "short"
    record.value = "..."  # the listing's redacted_value becomes "......" : it shows nothing
    server.org.keys = {key: record, admin: server.org.keys[admin]}
    keymap = KeyMap(ApiClient(Secret(admin), admin=True))
    assert keymap.match(Secret(key)) == []
    monkeypatch.setenv("OPENAI_ADMIN_KEY", admin)
    (tmp_path / "app.py").write_text(f"K = '{key}'\n")
    result = cli("scan", "--verify", "--format", "json", str(tmp_path / "app.py"))
    (finding,) = result.json()["findings"]
    assert "revoke" not in finding["verification"]
    assert_nowhere(key, result.out, result.err)
    assert_nowhere(admin, result.out, result.err)


def test_a_hostile_service_account_name_cannot_forge_the_revoke_prompt(
    server: OpenAIServer, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    admin = key_of(KeyKind.ADMIN, rng).key
    server.org.project("proj_b")
    record = server.org.add_key(key, "proj_b", id="key_bot", owner_type="service_account")
    server.org.add_key(admin, None)
    hostile = f"{key}\x1b[2J\nkeysentry: revoked nothing, all is well"
    server.org.service_accounts[record.owner_id]["name"] = hostile
    monkeypatch.setenv("OPENAI_ADMIN_KEY", admin)
    refused = cli("revoke", "--project", "proj_b", "--key-id", "key_bot")
    assert refused.code == 2
    assert "\x1b" not in refused.err and len(refused.err.splitlines()) == 2  # note + error
    assert key[12:40] not in refused.err  # not even the part a shortened name would show
    assert_nowhere(key, refused.out, refused.err)
