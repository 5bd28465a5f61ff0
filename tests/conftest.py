from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keysentry.cli import main

sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["redact_failures", "stores"]


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
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(repo: Path, *args: str, date: int = 0) -> str:
    """Run git in `repo` with a fixed identity; `date` (days after 2026-01-01) fixes the time."""
    stamp = f"2026-01-01T00:00:00+00:00 +{date}days" if date else "2026-01-01T00:00:00+00:00"
    env = {**GIT_ENV, "HOME": str(repo.parent), "GIT_AUTHOR_DATE": stamp,
           "GIT_COMMITTER_DATE": stamp}  # fmt: skip
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
