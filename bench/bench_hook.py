"""Pre-commit hook latency on a typical commit (10 changed files), side by side:

    python bench/bench_hook.py [--runs N]

- `pre-commit run keysentry`: the hook as users run it (its environment already installed);
- `keysentry scan --staged`: the bare hook command;
- `betterleaks git --staged` restricted to its OpenAI rule;
- `python -c pass`: the interpreter's own start-up.

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

from common import betterleaks, betterleaks_command, keysentry, median_seconds, table
from project_snapshot import offline_install_env, snapshot, wheelhouse
from synthetic_repo import build

IDENTITY = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]


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
    pre_commit = [sys.executable, "-m", "pre_commit"]
    installed = subprocess.run(
        [*pre_commit, "install-hooks"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        sys.exit(f"pre-commit install-hooks failed:\n{installed.stdout}{installed.stderr}")
    for path in sorted(p for p in repo.rglob("*.py") if ".git" not in p.parts)[:10]:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("# a typical change\nvalue = compute(value) + 1\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    os.environ.update(env)
    rows = [
        (
            "pre-commit run keysentry",
            median_seconds([*pre_commit, "run", "keysentry"], args.runs, repo),
            "",
        ),
        (
            "keysentry scan --staged (bare hook command)",
            median_seconds([*keysentry(), "scan", "--staged", "-q"], args.runs, repo),
            "",
        ),
        (
            "betterleaks git --staged (openai rule)",
            median_seconds(
                betterleaks_command("git", ".", "--staged"),
                args.runs,
                repo,
            ),
            "",
        ),
        (
            "python -c pass (interpreter start-up)",
            median_seconds([sys.executable, "-c", "pass"], args.runs, repo),
            "",
        ),
    ]
    print(f"A 10-file staged commit; median of {args.runs} runs.\n")
    print(table(rows, ["betterleaks git --staged (openai rule)"]))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
