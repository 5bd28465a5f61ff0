"""History, staged and cached scans: keysentry vs betterleaks (OpenAI rule only) vs the floor.

    python bench/bench_history.py [--runs N] [--commits N]

Builds the synthetic history of `synthetic_repo.py` (2,000 commits of real text by default,
several branches, planted keys) in a temp dir and times, side by side in one run:

- `keysentry scan --history` from a cold cache, and again with its caches warm;
- `betterleaks git` restricted to its OpenAI rule;
- `git cat-file --batch-all-objects --batch --unordered > /dev/null`: reading every object once;
- a staged scan of a typical commit (10 changed files): `keysentry scan --staged` and
  `betterleaks git --staged`, with the interpreter's and keysentry's bare start-up beside them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import betterleaks_command, keysentry, median_seconds, peak_memory_mb, table
from synthetic_repo import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--commits", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keysentry-bench-"))
    repo = work / "repo"
    planted = build(repo, commits=args.commits)
    ks = keysentry()
    cache = repo / ".git" / "keysentry"

    def cold() -> None:
        shutil.rmtree(cache, ignore_errors=True)

    history = [*ks, "scan", "--history", "-q", "."]
    report = work / "betterleaks.json"
    bl_history = betterleaks_command("git", ".", "-o", str(report))
    floor = ["sh", "-c", "git cat-file --batch-all-objects --batch --unordered > /dev/null"]

    cold()
    ours_run = [*ks, "scan", "--history", "-q", "--format", "json", "."]
    found = json.loads(subprocess.run(ours_run, cwd=repo, capture_output=True).stdout)
    ours = {(f["fingerprint"], f["path"]) for f in found["findings"]}
    subprocess.run(bl_history, cwd=repo, capture_output=True, check=False)
    theirs = json.loads(report.read_text())["findings"]
    their_pairs = {(f["match"]["value"], f["location"]["path"]) for f in theirs}
    cold()
    our_memory = peak_memory_mb(history, repo)
    their_memory = peak_memory_mb(bl_history, repo)

    rows = [
        (
            "keysentry scan --history (cold cache)",
            median_seconds(history, args.runs, repo, prepare=cold),
            f"found {len(ours)} of {len(planted.pairs)} planted key/path pairs; "
            f"peak {our_memory:.0f} MB",
        ),
        (
            "keysentry scan --history (cached)",
            median_seconds(history, args.runs, repo),
            "same findings; only the blobs with keys re-read",
        ),
        (
            "betterleaks git (openai rule)",
            median_seconds(bl_history, args.runs, repo),
            f"{len(theirs)} findings (one per commit), {len(their_pairs)} distinct key/path "
            f"pairs; peak {their_memory:.0f} MB",
        ),
        ("git cat-file --batch-all-objects (floor)", median_seconds(floor, args.runs, repo), ""),
    ]
    blobs = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectsize)"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    sizes = [int(line.split()[1]) for line in blobs if line.startswith("blob ")]
    commits = subprocess.run(
        ["git", "rev-list", "--all", "--count"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"History: {commits} commits, {len(sizes):,} unique blobs, {sum(sizes) / 1e6:.1f} MB; "
        f"median of {args.runs} runs.\n"
    )
    print(
        table(rows, ["git cat-file --batch-all-objects (floor)", "betterleaks git (openai rule)"])
    )

    # A typical commit: ten files changed and staged.
    for path in sorted(p for p in repo.rglob("*.py") if ".git" not in p.parts)[:10]:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("# a typical change\nvalue = compute(value) + 1\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    staged_rows = [
        (
            "keysentry scan --staged",
            median_seconds([*ks, "scan", "--staged", "-q", "."], args.runs * 3, repo),
            "",
        ),
        (
            "betterleaks git --staged (openai rule)",
            median_seconds(
                betterleaks_command("git", ".", "--staged"),
                args.runs * 3,
                repo,
            ),
            "",
        ),
        (
            "python -c pass (interpreter start-up)",
            median_seconds([sys.executable, "-c", "pass"], args.runs * 3, repo),
            "",
        ),
        (
            "keysentry --version (start-up)",
            median_seconds([*ks, "--version"], args.runs * 3, repo),
            "",
        ),
    ]
    print(f"\nStaged scan of a 10-file commit; median of {args.runs * 3} runs.\n")
    print(table(staged_rows, ["betterleaks git --staged (openai rule)"]))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
