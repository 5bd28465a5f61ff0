"""Pre-commit hook latency on a typical commit (10 changed files), side by side, on a clean
commit and on one that changes a file already holding a key:

    python bench/bench_hook.py [--runs N]

- `pre-commit run keysentry`: the hook as users run it (its environment already installed);
- the hook's own command, `keysentry scan --pre-commit --quiet FILES`, run from the fresh
  virtualenv pre-commit built for it (keysentry and its dependencies only, bytecode compiled
  by pip), and `keysentry scan --staged -q` (what `install-hook` runs) from the same venv;
- `betterleaks git --staged` restricted to its OpenAI rule;
- `python -c pass` with that venv's interpreter: the start-up no Python tool can avoid.

Timed round by round, alternating the tools; wall and CPU time (user + system, git's
included) are both reported, CPU being the steadier on a shared machine.

Needs `pip install '.[test]'` (betterleaks among them). The hook's environment is built
offline, as in the tests, from wheels of what this interpreter has installed
(tests/project_snapshot.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import alternate, betterleaks, betterleaks_command, table
from keysentry.scanner.needles import nothing_to_find
from project_snapshot import offline_install_env, snapshot, wheelhouse
from synthetic_repo import build

IDENTITY = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]
BETTERLEAKS = "betterleaks git --staged (openai rule)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    betterleaks()  # exits with what to install when it is missing, before any work
    work = Path(tempfile.mkdtemp(prefix="keysentry-bench-"))
    repo, hook_repo = work / "repo", work / "hook-repo"
    build(repo, commits=300)
    hook_repo.mkdir()
    rev = snapshot(hook_repo, ["git", *IDENTITY])
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {hook_repo}\n  rev: {rev}\n  hooks:\n  - id: keysentry\n"
    )
    # Offline, as in the tests: the hook's dependencies are wheels of this environment's own.
    env = {
        **os.environ,
        **offline_install_env(wheelhouse(work / "wheels")),
        "PRE_COMMIT_HOME": str(work / "pre-commit-home"),
    }
    installed = subprocess.run(
        [sys.executable, "-m", "pre_commit", "install-hooks"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        sys.exit(f"pre-commit install-hooks failed:\n{installed.stdout}{installed.stderr}")
    os.environ.update(env)
    hook_bin = hook_environment(work / "pre-commit-home")
    sources = sorted(p for p in repo.rglob("*.py") if ".git" not in p.parts)
    clean = [p for p in sources if nothing_to_find(p.read_bytes())][:10]
    for title, files in (
        ("A clean 10-file staged commit (what nearly every commit is)", clean),
        ("A 10-file staged commit, one of whose files holds a key already", sources[:10]),
    ):
        print(f"{title}; median of {args.runs} alternating rounds.\n")
        print(time_commit(repo, files, hook_bin, args.runs))
        print()
    shutil.rmtree(work)


def time_commit(repo: Path, files: list[Path], hook_bin: Path, runs: int) -> str:
    """Each command timed on a commit that changes `files`; the change is undone after."""
    for path in files:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("# a typical change\nvalue = compute(value) + 1\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    staged = git_output(repo, "diff", "--cached", "--name-only").split()
    hook_keysentry = str(hook_bin / "keysentry")
    pre_commit = [sys.executable, "-m", "pre_commit"]
    commands = {
        "pre-commit run keysentry": [*pre_commit, "run", "keysentry"],
        "keysentry scan --pre-commit (the hook's command, its venv)": [
            hook_keysentry,
            "scan",
            "--pre-commit",
            "--quiet",
            *staged,
        ],
        "keysentry scan --staged -q (its venv; install-hook's command)": [
            hook_keysentry,
            "scan",
            "--staged",
            "-q",
        ],
        BETTERLEAKS: betterleaks_command("git", ".", "--staged"),
        "python -c pass (the hook venv's interpreter)": [str(hook_bin / "python"), "-c", "pass"],
    }
    timed = alternate(commands, runs, cwd=repo)
    subprocess.run(["git", "reset", "-q", "--hard", "HEAD"], cwd=repo, check=True)
    rows = [(name, timed[name], "") for name in commands]
    return table(rows, [BETTERLEAKS, "python -c pass (the hook venv's interpreter)"])


def git_output(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def hook_environment(home: Path) -> Path:
    """The bin/ of the virtualenv pre-commit built for the hook: a fresh venv holding only
    keysentry and its dependencies, installed as a user's machine installs them."""
    [python] = sorted(home.glob("repo*/py_env-*/bin/python"))
    return python.parent


if __name__ == "__main__":
    main()
