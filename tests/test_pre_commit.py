"""The hooks in .pre-commit-hooks.yaml, run by the real pre-commit, offline.

pre-commit builds the hook's virtualenv and pip-installs this repository into it, as on a
user's machine, except that pip's index is a wheelhouse packed from this environment's own
installed dependencies (tests/project_snapshot.py): the hook's environment is a real install
of the snapshot, built from nothing but the environment under test.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GIT_ENV, GitRepo, git
from keygen import key_of
from keysentry.scanner.keys import KeyKind
from project_snapshot import offline_install_env, snapshot, wheelhouse


@pytest.fixture(scope="module")
def hook_envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pre-commit's cache of hook environments (shared by the module's tests, so each is
    built once) and the offline install settings it builds them with."""
    wheels = wheelhouse(tmp_path_factory.mktemp("wheels"))
    home = tmp_path_factory.mktemp("pre-commit-home")
    return {**offline_install_env(wheels), "PRE_COMMIT_HOME": str(home)}


@pytest.fixture
def offline(hook_envs: dict[str, str]) -> dict[str, str]:
    """The environment pre-commit and git run in: this test's own HOME, no index."""
    return {**os.environ, **GIT_ENV, **hook_envs}


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A snapshot of this repository, so that pre-commit installs it once by rev and reuses
    the env across tests."""
    path = tmp_path_factory.mktemp("hook-repo")
    identity = ["-c", "user.name=Ada", "-c", "user.email=ada@example.com"]
    return path, snapshot(path, ["git", *identity])


def pre_commit(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def run_git(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False
    )


def test_try_repo_blocks_a_staged_key_with_a_redacted_message(
    gitrepo: GitRepo, rng: random.Random, offline: dict[str, str], hook_repo: tuple[Path, str]
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.write("settings.py", f"DEBUG = True\nOPENAI_API_KEY = '{key}'\n")
    gitrepo("add", "settings.py")
    path, rev = hook_repo  # the working tree, new files included (try-repo would skip them)
    done = pre_commit(
        gitrepo.path, offline, "try-repo", str(path), "keysentry", "--ref", rev, "--verbose"
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Failed" in output
    assert "settings.py:2:19: OpenAI project key sk-proj-..." + key[-4:] in output
    assert "keysentry:allow" in output
    assert key not in output


@pytest.fixture
def consumer(gitrepo: GitRepo, hook_repo: tuple[Path, str], offline: dict[str, str]) -> GitRepo:
    """A repository whose .pre-commit-config.yaml uses both hooks, installed for real."""
    path, rev = hook_repo
    gitrepo.write(
        ".pre-commit-config.yaml",
        f"repos:\n- repo: {path}\n  rev: {rev}\n  hooks:\n"
        "  - id: keysentry\n  - id: keysentry-push\n",
    )
    gitrepo("add", ".pre-commit-config.yaml")
    installed = pre_commit(gitrepo.path, offline, "install", "-t", "pre-commit", "-t", "pre-push")
    assert installed.returncode == 0, installed.stderr
    return gitrepo


def test_commits_through_the_installed_hook(
    consumer: GitRepo, rng: random.Random, offline: dict[str, str]
) -> None:
    key = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    clean = run_git(consumer.path, offline, "commit", "-q", "-m", "config")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    consumer.write("app.py", f"KEY = '{key}'\n")
    consumer("add", "app.py")
    blocked = run_git(consumer.path, offline, "commit", "-q", "-m", "leak")
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0
    assert "app.py:1:8: OpenAI service account key sk-svcacct-..." in output
    assert key not in output
    consumer.write("app.py", f"KEY = '{key}'  # keysentry:allow (a test fixture)\n")
    consumer("add", "app.py")
    allowed = run_git(consumer.path, offline, "commit", "-q", "-m", "allowed")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_the_pre_push_hook_blocks_a_pushed_range_with_a_key(
    consumer: GitRepo, rng: random.Random, offline: dict[str, str], tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    consumer("remote", "add", "origin", str(remote))
    assert run_git(consumer.path, offline, "commit", "-q", "-m", "config").returncode == 0
    first = run_git(consumer.path, offline, "push", "-q", "origin", "main")
    assert first.returncode == 0, first.stdout + first.stderr
    # Committed without hooks (as `git commit --no-verify` would), so that only the push sees it.
    consumer.write("k.env", f"OPENAI_API_KEY={key_of(KeyKind.ADMIN, rng).key}\n")
    consumer("add", "k.env")
    consumer("commit", "-q", "--no-verify", "-m", "leak")
    blocked = run_git(consumer.path, offline, "push", "-q", "origin", "main")
    assert blocked.returncode != 0
    assert "k.env:1:16: OpenAI Admin API key sk-admin-..." in blocked.stdout + blocked.stderr
