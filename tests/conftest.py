"""Fixtures every test module shares, and the test process's hermetic environment.

Tests pass or fail on the code alone, whoever runs them and wherever: each test gets a HOME
(and XDG directories) of its own, the variables that carry credentials, configuration or
proxies (AWS_*, VAULT_*, AZURE_*, OPENAI_*, KEYSENTRY_*, GIT_*, PIP_*, NO_COLOR, ...) are
cleared, and the subprocesses tests start inherit all of it. keysentry is run as the
interpreter under test installed it, never as whatever `keysentry` PATH finds first.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from keysentry.cli import main

sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["redact_failures", "stores", "openai_fixtures"]

# Variables that would let the machine's credentials, configuration or network setup decide a
# test: cloud and store credentials, keysentry's own settings, a surrounding git operation's
# GIT_DIR/GIT_INDEX_FILE (tests run from a hook), a CI runner's GITHUB_*, pip/virtualenv
# configuration, colour switches and proxies (tests reach only 127.0.0.1).
LEAKY_PREFIXES = (
    *("AWS_", "AZURE_", "MSI_", "IDENTITY_", "VAULT_", "BAO_", "OPENAI_", "KEYSENTRY_", "KS_"),
    *("GIT_", "GITHUB_", "RUNNER_", "PRE_COMMIT", "PIP_", "VIRTUALENV_"),
)
LEAKY_NAMES = {"NO_COLOR", "FORCE_COLOR", "CLICOLOR", "CLICOLOR_FORCE"}
LEAKY_NAMES |= {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}  # and lower case
# How Python child processes behave (PYTHONUNBUFFERED=1 hid a reentrant print in a signal
# handler on a machine that had it set, and only there).
LEAKY_NAMES |= {"PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONWARNINGS"}
LEAKY_NAMES |= {"PYTHONDEVMODE", "PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONBREAKPOINT"}
XDG_DIRS = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_CACHE_HOME": ".cache",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
}


# The environment pytest was started in, before any fixture changed it: for the opt-in live
# tests (tests/test_live_stores.py), whose point is the machine's real credentials.
MACHINE_ENV = dict(os.environ)


def use_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `home` this process's HOME, with empty XDG directories inside it, and clear every
    variable that could leak the machine's credentials or configuration into a test."""
    for name in list(os.environ):
        if name.startswith(LEAKY_PREFIXES) or name.upper() in LEAKY_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    for name, sub in XDG_DIRS.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A HOME for session- and module-scoped fixtures (servers, pre-commit's environments),
    set before any of them starts."""
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as patch:
        use_home(home, patch)
        yield home


@pytest.fixture(autouse=True)
def own_home(
    session_home: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test's own empty HOME (outside tmp_path, which tests list and scan)."""
    home = tmp_path_factory.mktemp("home")
    use_home(home, monkeypatch)
    return home


@pytest.fixture
def machine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give this test back the environment pytest was started in: its HOME, credentials and
    KEYSENTRY_LIVE_* settings. Only for tests that opt in to leaving loopback."""
    for name in list(os.environ):
        if name not in MACHINE_ENV:
            monkeypatch.delenv(name)
    for name, value in MACHINE_ENV.items():
        monkeypatch.setenv(name, value)


def console_script(name: str = "keysentry", distribution: str = "keysentry") -> Path:
    """The script `name` that pip installed with `distribution` for the interpreter under test,
    found through the distribution's RECORD (so a venv, --user or system install all work),
    never by PATH."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise AssertionError(f"{distribution} is not installed: pip install '.[test]'") from None
    for file in dist.files or []:
        if file.name == name and file.parts[0] == "..":
            return Path(str(dist.locate_file(file))).resolve()
    raise AssertionError(f"{sys.prefix} has no {name} script: pip install '.[test]'")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A generator seeded per test, so every key a test builds is the same on every run."""
    return random.Random(request.node.nodeid)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Run `keysentry ARGS` in this process; returns exit code and captured output."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    yield run


GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": os.environ.get("PATH", os.defpath),  # wherever this machine has git
}


def git(repo: Path, *args: str, date: int = 0) -> str:
    """Run git in `repo` with a fixed identity; `date` (days after 2026-01-01) fixes the time."""
    stamp = f"2026-01-01T00:00:00+00:00 +{date}days" if date else "2026-01-01T00:00:00+00:00"
    env = {
        **GIT_ENV,
        "HOME": str(repo.parent),
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


class GitRepo:
    """A real repository in a temp dir, with helpers that commit files at fixed dates."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.day = 0

    def __call__(self, *args: str) -> str:
        return git(self.path, *args, date=self.day)

    def write(self, name: str, text: str) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, **files: str | None) -> str:
        """Write (or, for None, delete) files by name (`__` stands for `/`), commit them, and
        return the commit id."""
        self.day += 1
        for name, text in files.items():
            name = name.replace("__", "/")
            if text is None:
                self("rm", "-q", name)
            else:
                self.write(name, text)
                self("add", name)
        self("commit", "-q", "--allow-empty", "-m", message)
        return self("rev-parse", "HEAD")

    def date(self, commit: str) -> str:
        return self("show", "-s", "--format=%aI", commit)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository in a temp dir."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


@pytest.fixture
def gitrepo(repo: Path) -> GitRepo:
    return GitRepo(repo)
