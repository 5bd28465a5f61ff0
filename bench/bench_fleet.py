"""A fleet of repositories: a shell loop of `keysentry scan --history` vs `keysentry fleet scan`
on a LocalCluster, and the fleet's rerun with nothing new.

    python bench/bench_fleet.py [--generated N] [--commits N] [--workers N]

The fleet is made of the real repositories the snapshot tool brought to /work/.mirror
(psf/requests, pallets/flask, openai/openai-python, ...; see DEVELOPERS.md), each cloned with
`git clone --no-local --bare` into a temp dir (their content is never committed here), plus
`--generated` synthetic histories (`synthetic_repo.py`, real text, planted keys) to reach at
least 30. Then, in one run, side by side:

- `for r in ...; do keysentry scan --history -q --no-cache $r; done`: one process per
  repository, one after another, nothing cached (the honest "before");
- `keysentry fleet scan --repos FILE` on an embedded LocalCluster (one worker per core), cold:
  it clones each repository into its mirror cache first (a local clone: the network is not
  measured) and writes a fresh SQLite store;
- the same `fleet scan` again, nothing new: a fetch per mirror, no blob read but the few that
  hold keys.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import keysentry
from synthetic_repo import build

MIRRORS = Path("/work/.mirror")


def real_repositories(into: Path) -> list[Path]:
    """Bare clones of the snapshots present under /work/.mirror."""
    found = []
    for source in sorted(MIRRORS.glob("*/repo")):
        name = source.parent.name
        target = into / f"{name}.git"
        subprocess.run(
            ["git", "clone", "--quiet", "--no-local", "--bare", str(source), str(target)],
            check=True,
        )
        found.append(target)
    return found


def generated_repositories(into: Path, count: int, commits: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = into / f"generated-{index:02d}"
        build(path, seed=1000 + index, commits=commits)
        paths.append(path)
    return paths


def size_mb(paths: list[Path]) -> float:
    total = 0
    for path in paths:
        git_dir = path if path.suffix == ".git" else path / ".git"
        total += sum(f.stat().st_size for f in (git_dir / "objects").rglob("*") if f.is_file())
    return total / 1e6


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generated", type=int, default=27)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keysentry-bench-fleet-"))
    try:
        repos = real_repositories(work)
        repos += generated_repositories(work, args.generated, args.commits)
        listed = work / "repos.txt"
        listed.write_text("".join(f"{p}\n" for p in repos))
        ks = keysentry()
        loop = " ".join(
            ["for r in $(cat repos.txt); do", *ks, "scan --history -q --no-cache", '"$r";', "done"]
        )
        sequential, _ = timed(["sh", "-c", loop], cwd=work)
        fleet = [
            *ks,
            "fleet",
            "scan",
            "--repos",
            str(listed),
            "--store",
            str(work / "f.db"),
            "--cache-dir",
            str(work / "cache"),
            "--workers",
            str(args.workers),
            "-q",
        ]
        cold, code = timed(fleet)
        assert code in (0, 1), f"fleet scan exit {code}"
        rerun, code = timed(fleet)
        assert code in (0, 1), f"fleet rerun exit {code}"
        mb = size_mb(repos)
        rows = [
            ("sequential `scan --history` loop", sequential),
            (f"`fleet scan`, LocalCluster of {args.workers}, cold", cold),
            ("`fleet scan` rerun, nothing new", rerun),
        ]
        print(
            f"{len(repos)} repositories ({len(repos) - args.generated} real), "
            f"{mb:,.0f} MB of packed objects, {os.cpu_count()} cores\n"
        )
        print("| run | seconds | ratio to the loop | repositories/hour | GB/hour |")
        print("|---|---|---|---|---|")
        for name, seconds in rows:
            print(
                f"| {name} | {seconds:.1f} | {seconds / sequential:.2f}x | "
                f"{len(repos) * 3600 / seconds:,.0f} | {mb / 1e3 * 3600 / seconds:,.1f} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
