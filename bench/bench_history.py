"""History scans: keysentry (cold, cached, after one new commit) vs betterleaks (OpenAI rule
only) vs the cat-file floor.

    python bench/bench_history.py [--runs N] [--commits N] [--repo PATH]

The history is the synthetic one of `synthetic_repo.py` (2,000 commits of real text, several
branches, planted keys), or with --repo a `git clone --no-local` of PATH (a real repository as
a normal pack). Timed round by round, alternating the tools:

- `keysentry scan --history --no-cache` (cold: every blob read);
- `keysentry scan --history` with nothing changed since the last scan (cached);
- `keysentry scan --history` after one commit was added since the last scan;
- `betterleaks git` restricted to its OpenAI rule;
- `git cat-file --batch-all-objects --batch --unordered > /dev/null` (the floor: reading
  every object once, in pack order), and `python -c pass` (the interpreter's start-up).

Wall and CPU time (user + system, git's included) are both reported: on a shared machine CPU
time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import alternate, betterleaks_command, keysentry, peak_memory_mb, table
from synthetic_repo import build

FLOOR = "git cat-file --batch-all-objects --unordered (floor)"
BETTERLEAKS = "betterleaks git (openai rule)"
PYTHON = "python -c pass (interpreter start-up)"


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout.strip()


def one_more_commit(repo: Path, work: Path) -> tuple[str, str, str]:
    """(branch ref, its tip, a new commit on it changing one file) without touching the
    work tree: the commit is made with plumbing, and the branch is moved onto it per round."""
    ref = git(repo, "symbolic-ref", "HEAD")
    tip = git(repo, "rev-parse", "HEAD")
    index = {"GIT_INDEX_FILE": str(work / "bench-index")}
    git(repo, "read-tree", tip, env=index)
    blob = (
        subprocess.run(
            ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
            input=b"a new file in one more commit\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    git(
        repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},bench-new-file.txt", env=index
    )
    tree = git(repo, "write-tree", env=index)
    identity = {k: "Bench" for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")}
    identity |= {k: "bench@example.com" for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")}
    new = git(repo, "commit-tree", tree, "-p", tip, "-m", "one more", env=identity)
    return ref, tip, new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--repo", type=Path, help="a real repository to clone and scan")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keysentry-bench-"))
    repo = work / "repo"
    planted = None
    if args.repo:
        subprocess.run(["git", "clone", "-q", "--no-local", str(args.repo), str(repo)], check=True)
    else:
        planted = build(repo, commits=args.commits)
    ks = keysentry()
    cache = repo / ".git" / "keysentry"
    history = [*ks, "scan", "--history", "-q", "."]
    report = work / "betterleaks.json"
    ref, tip, new = one_more_commit(repo, work)

    def at(commit: str) -> None:
        git(repo, "update-ref", ref, commit)

    def before_new_commit() -> None:
        at(tip)
        subprocess.run(history, cwd=repo, capture_output=True, check=False)  # cache: old refs
        at(new)

    def cached() -> None:
        at(tip)
        subprocess.run(history, cwd=repo, capture_output=True, check=False)  # cache: these refs

    def untouched() -> None:
        at(tip)

    commands = {
        "keysentry scan --history --no-cache (cold)": [*history, "--no-cache"],
        "keysentry scan --history (cached, nothing changed)": history,
        "keysentry scan --history (cached, one commit added)": history,
        BETTERLEAKS: betterleaks_command("git", ".", "-o", str(report)),
        FLOOR: ["sh", "-c", "git cat-file --batch-all-objects --batch --unordered > /dev/null"],
        PYTHON: [sys.executable, "-c", "pass"],
    }
    prepare = {
        "keysentry scan --history --no-cache (cold)": untouched,
        "keysentry scan --history (cached, nothing changed)": cached,
        "keysentry scan --history (cached, one commit added)": before_new_commit,
        BETTERLEAKS: untouched,
        FLOOR: untouched,
    }
    at(tip)
    shutil.rmtree(cache, ignore_errors=True)
    found = json.loads(
        subprocess.run([*history, "--format", "json"], cwd=repo, capture_output=True).stdout
    )["findings"]
    ours = {(f["fingerprint"], f["path"]) for f in found}
    subprocess.run(commands[BETTERLEAKS], cwd=repo, capture_output=True, check=False)
    theirs = json.loads(report.read_text())["findings"]
    their_pairs = {(f["match"]["value"], f["location"]["path"]) for f in theirs}
    our_memory = peak_memory_mb([*history, "--no-cache"], repo)
    their_memory = peak_memory_mb(commands[BETTERLEAKS], repo)
    runs = alternate(commands, args.runs, cwd=repo, prepare=prepare)
    at(tip)

    expected = f" of {len(planted.pairs)} planted" if planted else ""
    notes = {
        "keysentry scan --history --no-cache (cold)": f"{len(ours)}{expected} key/path pairs; "
        f"peak {our_memory:.0f} MB",
        BETTERLEAKS: f"{len(theirs)} findings (one per commit), {len(their_pairs)} key/path "
        f"pairs; peak {their_memory:.0f} MB",
    }
    rows = [(name, runs[name], notes.get(name, "")) for name in commands]
    sizes = [
        int(line.split()[1])
        for line in git(
            repo, "cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectsize)"
        ).splitlines()
        if line.startswith("blob ")
    ]
    commits = git(repo, "rev-list", "--all", "--count")
    name = args.repo.resolve().name if args.repo else "synthetic"
    print(
        f"History: {name}, {commits} commits, {len(sizes):,} unique blobs, "
        f"{sum(sizes) / 1e6:,.1f} MB; median of {args.runs} alternating rounds.\n"
    )
    print(table(rows, [FLOOR, BETTERLEAKS, PYTHON]))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
