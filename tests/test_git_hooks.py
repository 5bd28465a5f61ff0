"""Plain git hooks: install-hook / uninstall-hook, and real commits and pushes through them."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

from conftest import GIT_ENV, GitRepo, git
from keygen import key_of
from keysentry.commands.hooks import CHAINED_SUFFIX, MARKER, push_spans
from keysentry.scanner.keys import KeyKind


def attempt(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a git command that fires hooks; returns its outcome instead of raising."""
    env = {**GIT_ENV, "HOME": str(repo.parent)}
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False
    )


def test_the_installed_pre_commit_hook_blocks_a_key_and_passes_clean_commits(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    result = cli("install-hook", str(gitrepo.path))
    assert result.code == 0 and "installed" in result.out
    gitrepo.write("clean.py", "x = 1\n")
    gitrepo("add", "clean.py")
    assert attempt(gitrepo.path, "commit", "-q", "-m", "clean").returncode == 0
    gitrepo.write("app.py", f"KEY = '{key}'\n")
    gitrepo("add", "app.py")
    blocked = attempt(gitrepo.path, "commit", "-q", "-m", "leak")
    assert blocked.returncode == 1
    shown = blocked.stdout + blocked.stderr  # git sends a hook's stdout to stderr
    assert "app.py:1:8: OpenAI project key sk-proj-..." in shown
    assert "keysentry:allow" in shown
    assert key not in blocked.stdout + blocked.stderr
    gitrepo.write("app.py", f"KEY = '{key}'  # keysentry:allow\n")
    gitrepo("add", "app.py")
    assert attempt(gitrepo.path, "commit", "-q", "-m", "allowed").returncode == 0


def test_installing_twice_changes_nothing(gitrepo: GitRepo, cli: Any) -> None:
    cli("install-hook", str(gitrepo.path))
    hook = gitrepo.path / ".git" / "hooks" / "pre-commit"
    first = hook.read_text()
    again = cli("install-hook", str(gitrepo.path))
    assert "already installed" in again.out
    assert hook.read_text() == first
    assert not (hook.parent / f"pre-commit{CHAINED_SUFFIX}").exists()


def test_an_existing_hook_is_chained_then_restored(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    hooks = gitrepo.path / ".git" / "hooks"
    existing = hooks / "pre-commit"
    existing.write_text("#!/bin/sh\necho 'lint ran' >&2\nexit 0\n")
    existing.chmod(0o755)
    cli("install-hook", str(gitrepo.path))
    assert MARKER in existing.read_text()
    gitrepo.write("a.py", "x = 1\n")
    gitrepo("add", "a.py")
    done = attempt(gitrepo.path, "commit", "-q", "-m", "ok")
    assert done.returncode == 0 and "lint ran" in done.stderr
    result = cli("uninstall-hook", str(gitrepo.path))
    assert "restored the previous one" in result.out
    assert existing.read_text() == "#!/bin/sh\necho 'lint ran' >&2\nexit 0\n"


def test_a_failing_chained_hook_still_blocks(gitrepo: GitRepo, cli: Any) -> None:
    existing = gitrepo.path / ".git" / "hooks" / "pre-commit"
    existing.write_text("#!/bin/sh\nexit 3\n")
    existing.chmod(0o755)
    cli("install-hook", str(gitrepo.path))
    gitrepo.write("a.py", "x = 1\n")
    gitrepo("add", "a.py")
    assert attempt(gitrepo.path, "commit", "-q", "-m", "x").returncode != 0
    assert attempt(gitrepo.path, "rev-parse", "--verify", "-q", "HEAD").stdout == ""


def test_core_hooks_path_is_honoured(gitrepo: GitRepo, rng: random.Random, cli: Any) -> None:
    gitrepo("config", "core.hooksPath", ".githooks")
    cli("install-hook", str(gitrepo.path))
    assert (gitrepo.path / ".githooks" / "pre-commit").exists()
    assert not (gitrepo.path / ".git" / "hooks" / "pre-commit").exists()
    gitrepo.write("k.py", f"K = '{key_of(KeyKind.ADMIN, rng).key}'\n")
    gitrepo("add", "k.py")
    assert attempt(gitrepo.path, "commit", "-q", "-m", "leak").returncode == 1


def test_uninstall_leaves_a_foreign_hook_alone(gitrepo: GitRepo, cli: Any) -> None:
    foreign = gitrepo.path / ".git" / "hooks" / "pre-commit"
    foreign.write_text("#!/bin/sh\nexit 0\n")
    result = cli("uninstall-hook", str(gitrepo.path))
    assert result.code == 2 and "not installed by keysentry" in result.err
    assert foreign.exists()


def test_the_pre_push_hook_blocks_a_push_that_adds_a_key(
    gitrepo: GitRepo, rng: random.Random, cli: Any, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo("remote", "add", "origin", str(remote))
    assert attempt(gitrepo.path, "push", "-q", "origin", "main").returncode == 0
    cli("install-hook", "--pre-push", str(gitrepo.path))
    gitrepo.commit("clean", **{"b.txt": "b\n"})
    assert attempt(gitrepo.path, "push", "-q", "origin", "main").returncode == 0
    gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={key_of(KeyKind.PROJECT, rng).key}\n"})
    gitrepo.commit("hide it", **{"k.env": None})  # deleted later: still in the pushed history
    blocked = attempt(gitrepo.path, "push", "-q", "origin", "main")
    assert blocked.returncode != 0
    assert "k.env:1:16: OpenAI project key" in blocked.stdout + blocked.stderr
    gitrepo("checkout", "-q", "-b", "feature")
    gitrepo.commit("feature", **{"f.txt": "f\n"})
    new_branch = attempt(gitrepo.path, "push", "-q", "origin", "feature")
    assert new_branch.returncode != 0  # the new branch carries the leaking commits too


def test_push_spans_from_pre_commit_and_from_git() -> None:
    zeros, a, b = "0" * 40, "a" * 40, "b" * 40
    env = {"PRE_COMMIT_FROM_REF": a, "PRE_COMMIT_TO_REF": b}
    assert push_spans("", env) == [f"{a}..{b}"]
    assert push_spans("", {"PRE_COMMIT_LOCAL_BRANCH": "refs/heads/x"}) == [f"{zeros}..refs/heads/x"]
    lines = (
        f"refs/heads/main {b} refs/heads/main {a}\nrefs/heads/gone {zeros} refs/heads/gone {a}\n"
    )
    assert push_spans(lines, {}) == [f"{a}..{b}"]
