"""The hooks in .pre-commit-hooks.yaml, run by the real pre-commit, offline.

pre-commit builds the hook's virtualenv and pip-installs this repository into it, as on a
user's machine, except that pip's index is a wheelhouse packed from this environment's own
installed dependencies (tests/project_snapshot.py): the hook's environment is a real install
of the snapshot, built from nothing but the environment under test.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GIT_ENV, GitRepo, git
from keygen import key_of
from keysentry import __version__
from keysentry.scanner.keys import KeyKind
from project_snapshot import PROJECT, offline_install_env, snapshot, wheelhouse

# Releases are tagged v + the version the package declares; the README's snippets use it.
TAG = f"v{__version__}"
README = PROJECT / "README.md"


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
    """A snapshot of this repository, tagged as a release is (TAG), so that pre-commit
    installs it once by that rev and reuses the env across tests."""
    path = tmp_path_factory.mktemp("hook-repo")
    identity = ["-c", "user.name=Ada", "-c", "user.email=ada@example.com"]
    snapshot(path, ["git", *identity])
    subprocess.run(["git", "-C", str(path), "tag", TAG], check=True, capture_output=True)
    return path, TAG


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


def use_hooks(repo: GitRepo, hook_repo: tuple[Path, str], hook: str = "- id: keysentry") -> None:
    path, rev = hook_repo
    repo.write(
        ".pre-commit-config.yaml", f"repos:\n- repo: {path}\n  rev: {rev}\n  hooks:\n  {hook}\n"
    )


def test_run_all_files_fails_on_a_key_committed_earlier(
    gitrepo: GitRepo, rng: random.Random, offline: dict[str, str], hook_repo: tuple[Path, str]
) -> None:
    """pre-commit.ci and CI jobs run `pre-commit run --all-files`: a key already committed
    fails it, though nothing is staged."""
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("leak", **{"src__settings.py": f"KEY = '{key}'\n"})
    use_hooks(gitrepo, hook_repo)
    gitrepo("add", ".pre-commit-config.yaml")
    done = pre_commit(gitrepo.path, offline, "run", "--all-files")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "src/settings.py:1:8: OpenAI project key sk-proj-..." + key[-4:] in output
    assert key not in output


def test_the_users_files_exclude_and_types_decide_what_is_scanned(
    gitrepo: GitRepo, rng: random.Random, offline: dict[str, str], hook_repo: tuple[Path, str]
) -> None:
    key = key_of(KeyKind.ADMIN, rng).key
    gitrepo.commit("keys", **{"fixtures__k.py": f"K = '{key}'\n", "notes.txt": f"{key}\n"})
    use_hooks(gitrepo, hook_repo, "- id: keysentry\n    exclude: ^fixtures/\n    types: [python]")
    gitrepo("add", ".pre-commit-config.yaml")
    done = pre_commit(gitrepo.path, offline, "run", "--all-files")
    assert done.returncode == 0, done.stdout + done.stderr  # both keys are outside its files
    use_hooks(gitrepo, hook_repo, "- id: keysentry\n    files: ^notes")
    done = pre_commit(gitrepo.path, offline, "run", "--all-files")
    assert done.returncode == 1
    assert "notes.txt:1:1: OpenAI Admin API key" in done.stdout + done.stderr
    assert "fixtures/k.py" not in done.stdout + done.stderr


def test_a_commit_scans_the_staged_contents_not_the_unstaged_edits(
    consumer: GitRepo, rng: random.Random, offline: dict[str, str]
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    assert run_git(consumer.path, offline, "commit", "-q", "-m", "config").returncode == 0
    consumer.write("app.py", f"KEY = '{key}'\n")
    consumer("add", "app.py")
    consumer.write("app.py", "KEY = os.environ['OPENAI_API_KEY']\n")  # unstaged: not committed
    blocked = run_git(consumer.path, offline, "commit", "-q", "-m", "staged key")
    assert blocked.returncode != 0
    assert "app.py:1:8: OpenAI project key" in blocked.stdout + blocked.stderr
    assert (consumer.path / "app.py").read_text() == "KEY = os.environ['OPENAI_API_KEY']\n"
    consumer("add", "app.py")
    consumer.write("app.py", f"KEY = '{key}'\n")  # now the key is the unstaged edit
    clean = run_git(consumer.path, offline, "commit", "-q", "-m", "clean")
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_a_committed_file_named_like_an_option_cannot_make_the_hook_pass(
    gitrepo: GitRepo, rng: random.Random, offline: dict[str, str], hook_repo: tuple[Path, str]
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.write("--exit-zero", f"K = '{key}'\n")
    gitrepo.write("--help", "x\n")
    gitrepo("add", "--", "--exit-zero", "--help")
    gitrepo("commit", "-q", "-m", "hostile")
    use_hooks(gitrepo, hook_repo)
    gitrepo("add", ".pre-commit-config.yaml")
    done = pre_commit(gitrepo.path, offline, "run", "--all-files")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "./--exit-zero:1:6: OpenAI project key" in output
    assert key not in output


def bash(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    (block,) = [b for b in blocks if containing in b]
    return str(block)


def test_the_readme_pre_commit_snippets_work_as_written(
    gitrepo: GitRepo, rng: random.Random, offline: dict[str, str], hook_repo: tuple[Path, str]
) -> None:
    """The README's .pre-commit-config.yaml (its placeholder URL pointed at this snapshot) and
    the commands after it, as written, with the rev the README names."""
    config = readme_block("yaml", "repos:")
    assert f"rev: {TAG}" in config
    path, _ = hook_repo
    gitrepo.write(
        ".pre-commit-config.yaml", config.replace("https://github.com/<owner>/keysentry", str(path))
    )
    gitrepo("add", ".pre-commit-config.yaml")
    shell = {**offline, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{offline['PATH']}"}
    for line in readme_block("sh", "pre-commit install").splitlines():
        done = bash(line, gitrepo.path, shell)
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
    key = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    gitrepo.write("deploy.env", f"OPENAI_API_KEY={key}\n")
    gitrepo("add", "deploy.env")
    gitrepo("commit", "-q", "--no-verify", "-m", "leak")
    done = bash("pre-commit run --all-files", gitrepo.path, shell)
    assert done.returncode == 1
    assert "deploy.env:1:16: OpenAI service account key" in done.stdout + done.stderr


def test_every_version_the_readme_pins_is_the_package_version() -> None:
    """`rev: vX.Y.Z` and `uses: …@vX.Y.Z` name the release of the version keysentry declares
    (`keysentry --version`), never one that does not exist."""
    text = README.read_text(encoding="utf-8")
    pinned = re.findall(r"(?:rev: |keysentry@)(v[0-9][^\s#]*)", text)
    assert pinned and set(pinned) == {TAG}
    manifest = (PROJECT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    assert set(re.findall(r"rev: (v[0-9][^\s#]*)", manifest)) == {TAG}


def test_the_hook_entry_imports_no_sdk(tmp_path: Path) -> None:
    """The hook runs on every commit: scanning the files pre-commit passes loads no boto3,
    hvac, azure or openai."""
    (tmp_path / "a.py").write_text("x = 1\n")
    probe = (
        "import sys; from keysentry.cli import main; "
        "main(['scan', '--pre-commit', '--quiet', sys.argv[1]]); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'boto3', 'botocore', 'hvac', 'azure', 'openai', 'httpx2', 'requests', 'dotenv', "
        "'tomlkit'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "a.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
