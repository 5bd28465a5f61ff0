"""Hostile input to `keysentry get`, `run` and `env check`: a command, an environment name or a
configured name that holds a key or control characters is named redacted and on one line, and
a command that cannot be run is a one-line error with the shell's exit code, not a traceback.

Every test ends with `assert_nowhere`: the key is in no output.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from leaks import assert_nowhere

from keygen import key_of
from keysentry import loader
from keysentry.errors import ExitCode
from keysentry.scanner.keys import KeyKind

FORGING = "a\x1b[31m\nkeysentry: OPENAI_API_KEY from env://forged"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "set")
    loader.configure(None)  # the configuration found from here, not an earlier test's
    yield tmp_path
    loader.configure(None)


@pytest.mark.parametrize("shape", ["key", "controls"])
def test_a_command_that_does_not_exist_is_named_redacted_on_one_line(
    project: Path, rng: random.Random, cli: Any, shape: str
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    command = key if shape == "key" else f"{FORGING} {key}"
    result = cli("run", "--", command)
    assert result.code == int(ExitCode.COMMAND_NOT_FOUND) == 127
    (line,) = result.err.splitlines()
    assert line.startswith("keysentry: error: ") and line.endswith(": command not found")
    assert "sk-proj-..." in line and "\x1b" not in line
    assert_nowhere(key, result.out, result.err)


def test_a_command_that_cannot_be_executed_is_one_line_and_exit_126(
    project: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    script = project / f"run{key}.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    for command in (str(script), str(project)):
        result = cli("run", "--", command)
        assert result.code == int(ExitCode.COMMAND_NOT_EXECUTABLE) == 126
        (line,) = result.err.splitlines()
        assert line.startswith("keysentry: error: ") and "cannot be executed" in line
        assert "internal error" not in line
        assert_nowhere(key, result.out, result.err)


def test_configured_names_and_environments_cannot_forge_env_check_lines(
    project: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    project.joinpath("keysentry.toml").write_text(
        '[environments."prod\\nstaging\\tOPENAI_API_KEY\\tok"]\n'
        '"a\\nb\\u001b[2J" = "env://OPENAI_API_KEY"\n'
    )
    monkeypatch.setenv("OPENAI_API_KEY", key)
    result = cli("env", "check")
    assert result.code == ExitCode.CLEAN
    (line,) = result.out.splitlines()
    assert line.startswith("prod\\nstaging\\tOPENAI_API_KEY\\tok\ta\\nb\\u001b[2J\tok\tsk-proj-...")
    fetched = cli("get", "--env", "prod\nstaging\tOPENAI_API_KEY\tok", "a\nb\x1b[2J")
    assert fetched.code == ExitCode.CLEAN
    assert len(fetched.out.splitlines()) == len(fetched.err.splitlines()) == 1
    assert "\x1b" not in fetched.out + fetched.err + result.out + result.err
    assert_nowhere(key, result.out, result.err, fetched.out, fetched.err)
