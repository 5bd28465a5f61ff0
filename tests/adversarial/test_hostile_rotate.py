"""Hostile input to rotation and spend limits: environment names from the config, API error
bodies that quote a key back, answers that try to forge output lines, a journal planted in
the tree. None runs code, escapes the journal directory, forges a line, leaks a key, or
deletes a key that is not the rotation's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from leaks import assert_nowhere

from keysentry import loader
from keysentry.rotate.journal import JOURNAL_DIR
from keysentry.secret import Secret
from keysentry.verify.liveness import Status, check
from servers.openai_api import error
from test_rotate import Stack, accounts, server, stack, stored

__all__ = ["server", "stack"]  # the fixtures, used by name


def every_key(stack: Stack) -> list[str]:
    return [*stack.keys.values(), *stack.server.org.keys]


def test_an_environment_named_like_a_path_with_control_characters_stays_in_its_journal(
    stack: Stack, cli: Any
) -> None:
    hostile = "../../outside\n::error::forged\x1b[31m"
    (stack.root / "keysentry.toml").write_text(
        f'[environments.{json.dumps(hostile)}]\nOPENAI_API_KEY = "{stack.refs["staging"]}"\n'
        "[load]\nttl_seconds = 0.2\n[rotate]\ngrace_seconds = 0.1\n"
    )
    loader.configure(None)
    environ = {**os.environ, "KEYSENTRY_ROTATE_CRASH_AFTER": "planned"}
    crashed = subprocess.run(
        [sys.executable, "-m", "keysentry", "rotate", "--env", hostile, "--yes"],
        cwd=stack.root,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert crashed.returncode == 137, crashed.stderr
    (journal,) = (stack.root / JOURNAL_DIR).iterdir()
    assert journal.name.startswith("env-") and journal.suffix == ".json"
    assert not (stack.root.parent.parent / "outside").exists()
    for line in crashed.stdout.splitlines():
        assert line.startswith("keysentry: ") and "\x1b" not in line
    assert not any(line.startswith("::error::forged") for line in crashed.stdout.splitlines())
    rolled = cli("rotate", "--rollback", "--env", hostile)
    assert rolled.code == 0, rolled.err
    assert stored(stack, "staging") == stack.keys["staging"]
    for key in every_key(stack):
        assert_nowhere(
            key, crashed.stdout, crashed.stderr, rolled.out, under=[stack.root / ".keysentry"]
        )


def test_an_api_error_quoting_the_key_back_is_one_redacted_line_and_the_store_is_kept(
    stack: Stack, cli: Any
) -> None:
    old = stack.keys["production"]
    stack.server.inject(
        "/v1/organization/projects/proj_production/service_accounts",
        500,
        error(f"internal error for {old}\n::error::forged"),
        times=3,
    )
    result = cli("rotate", "--env", "production", "--yes")
    assert result.code == 2 and result.err.count("\n") == 1
    assert not any(line.startswith("::error") for line in result.err.splitlines())
    assert stored(stack, "production") == old and check_live(old)
    rolled = cli("rotate", "--rollback", "--env", "production")
    assert rolled.code == 0, rolled.err
    for key in every_key(stack):
        assert_nowhere(key, result.out, result.err, rolled.out, under=[stack.root / ".keysentry"])


def test_a_journal_planted_in_the_tree_is_never_resumed(stack: Stack, cli: Any) -> None:
    """Someone else's journal (a cloned repository) naming another store and a key to delete."""
    planted = {
        "version": 1,
        "env": "production",
        "name": "OPENAI_API_KEY",
        "ref": {
            "scheme": "dotenv",
            "location": str(stack.root / ".env.development"),
            "field": "OPENAI_API_KEY",
            "options": {},
        },
        "id": "abcdef",
        "started": 0,
        "steps": ["planned", "verified", "waited"],
        "done": False,
        "old": {
            "fingerprint": "x",
            "redacted": "x",
            "version": None,
            "key_id": "key_preview",
            "project_id": "proj_preview",
            "owner": "user",
            "owner_id": "",
            "created_at": 0,
        },
        "new": {"account_name": "x", "fingerprint": "y"},
        "settings": {
            "ttl": 0,
            "grace": 0,
            "poll": 1,
            "unused_window": 0,
            "max_wait": 0,
            "until_unused": False,
        },
    }
    (stack.root / JOURNAL_DIR).mkdir(parents=True)
    (stack.root / JOURNAL_DIR / "production.json").write_text(json.dumps(planted))
    for action in ("--resume", "--rollback"):
        refused = cli("rotate", action, "--env", "production")
        assert refused.code == 2 and "not a rotation of this config" in refused.err
    assert check_live(stack.keys["preview"])
    assert stored(stack, "development") == stack.keys["development"]
    (stack.root / JOURNAL_DIR / "production.json").write_text("[1, 2")
    garbled = cli("rotate", "--resume", "--env", "production")
    assert garbled.code == 2 and garbled.err.count("\n") == 1


def test_a_spend_limit_answer_cannot_forge_a_line(stack: Stack, cli: Any) -> None:
    stack.server.org.spend_limits["proj_production"] = {
        "object": "project.spend_limit",
        "threshold_amount": 10**30,
        "currency": f"USD\n::error::forged {stack.keys['production']}",
        "interval": "month\r",
        "enforcement": {"status": "enforcing"},
    }
    shown = cli("limit", "show", "--env", "production")
    assert shown.code == 0, shown.err
    assert len(shown.out.splitlines()) == 1 and "\r" not in shown.out
    for key in every_key(stack):
        assert_nowhere(key, shown.out, shown.err)
    del stack.server.org.spend_limits["proj_production"]  # off-spec: not for the spec check
    assert accounts(stack, "production") == []


def check_live(key: str) -> bool:
    return check(Secret(key)).status is Status.LIVE
