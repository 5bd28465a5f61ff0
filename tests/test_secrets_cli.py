"""`keysentry get`, `keysentry run` and `keysentry env check`."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from keygen import key_of
from keysentry import loader
from keysentry.scanner.keys import KeyKind
from stores import write_config


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: random.Random) -> dict[str, str]:
    """A project whose development key is in .env.development and production key in AWS."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSENTRY_ENV", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    keys = {"development": key_of(KeyKind.PROJECT, rng).key, "production": ""}
    (tmp_path / ".env.development").write_text(f"OPENAI_API_KEY={keys['development']}\n")
    write_config(
        tmp_path,
        {
            "development": {"OPENAI_API_KEY": "dotenv://.env.development#OPENAI_API_KEY"},
            "production": {"OPENAI_API_KEY": "aws-sm://prod/openai#OPENAI_API_KEY"},
        },
    )
    loader.configure(None)
    return keys


def test_get_is_redacted_unless_revealed(project: dict[str, str], cli: Any) -> None:
    key = project["development"]
    shown = cli("get", "--env", "development")
    assert shown.code == 0
    assert shown.out.strip() == f"OPENAI_API_KEY = sk-proj-...{key[-4:]}"
    assert "from dotenv://.env.development#OPENAI_API_KEY" in shown.err
    assert key not in shown.out + shown.err
    loader.configure(None)
    assert cli("get", "--env", "development", "--reveal").out.strip() == key


def test_get_explains_a_missing_secret_in_one_line(
    project: dict[str, str], cli: Any, aws: Any
) -> None:
    result = cli("get", "--env", "production")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("keysentry: error: aws-sm://prod/openai#OPENAI_API_KEY: ")


def test_env_check_reports_each_reference(
    project: dict[str, str], cli: Any, aws: Any, rng: random.Random
) -> None:
    result = cli("env", "check")
    assert result.code == 1
    rows = [line.split("\t") for line in result.out.splitlines()]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("development", "OPENAI_API_KEY", "ok"),
        ("production", "OPENAI_API_KEY", "FAILED"),
    ]
    prod = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    aws.create_secret(Name="prod/openai", SecretString=json.dumps({"OPENAI_API_KEY": prod}))
    loader.configure(None)
    again = cli("env", "check", "--env", "production")
    assert again.code == 0 and prod not in again.out and "sk-svcacct-..." in again.out


def test_run_injects_the_key_and_returns_the_childs_exit_code(
    project: dict[str, str], tmp_path: Path
) -> None:
    key = project["development"]
    script = "import os, sys; sys.exit(0 if os.environ['OPENAI_API_KEY'] == sys.argv[1] else 7)"

    def run(*args: str, env: dict[str, str] | None = None) -> int:
        return subprocess.run(
            [sys.executable, "-m", "keysentry", "run", *args],
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
            capture_output=True,
            check=False,
        ).returncode

    assert run("--env", "development", "--", sys.executable, "-c", script, key) == 0
    assert run("--env", "development", "--", sys.executable, "-c", "raise SystemExit(3)") == 3
    preset = {"OPENAI_API_KEY": "sk-preset-value-for-the-child"}
    assert run("--env", "development", "--", sys.executable, "-c", script, key, env=preset) == 7
    assert (
        run(
            "--env",
            "development",
            "--override",
            "--",
            sys.executable,
            "-c",
            script,
            key,
            env=preset,
        )
        == 0
    )
    assert run("--env", "development", "--", "no-such-command-here") == 127


def test_env_check_with_nothing_configured_is_an_error_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    loader.configure(None)
    result = cli("env", "check")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.splitlines()
    assert "no environments configured" in line and "[environments.production]" in line
    write_config(tmp_path, {"staging": {}})
    loader.configure(None)
    empty = cli("env", "check")
    assert empty.code == 2 and "[environments.staging] names no secret" in empty.err
    loader.configure(None)


CHILD = """
import os, signal, sys, time
if sys.argv[1] == "trap":
    def handled(signum, frame):
        # os.write, not print: the signal may land while print("ready") is still returning,
        # and print is not reentrant.
        os.write(1, f"got {signum}\\n".encode())
        os._exit(0)
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), handled)
print("ready", os.getpid(), flush=True)
time.sleep(60)
"""


def supervised(directory: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    """`keysentry run -- python CHILD mode` started, its child ready: (keysentry, child pid).
    No terminal anywhere, so every signal keysentry gets is forwarded."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keysentry",
            "run",
            "--env",
            "development",
            "--",
            sys.executable,
            "-c",
            CHILD,
            mode,
        ],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout = process.stdout
    assert stdout is not None
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(stdout.readline()))
    reader.start()
    reader.join(30)
    assert ready and ready[0].startswith("ready"), "keysentry run did not start the child"
    return process, int(ready[0].split()[1])


def running(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_run_forwards_signals_to_the_child(
    project: dict[str, str], tmp_path: Path, signum: int
) -> None:
    process, child = supervised(tmp_path, "trap")
    try:
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
        assert (process.returncode, out.strip()) == (0, f"got {int(signum)}"), err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_child_killed_by_signal_n_makes_run_exit_128_plus_n(
    project: dict[str, str], tmp_path: Path, signum: int
) -> None:
    process, child = supervised(tmp_path, "plain")
    try:
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 128 + signum, err
        assert not running(child)  # never orphaned
        assert project["development"] not in err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
