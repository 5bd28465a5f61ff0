"""Every speed benchmark of docs/benchmarks.md, one after the other, in one command:

    python bench/all.py [--runs N] [--repo PATH ...]

In the tests' environment (`pip install '.[test]'`, ripgrep from the system's packages). Each
--repo (a local clone or a bare mirror of a real repository) adds a history benchmark on it,
and the first one is also the working tree (its HEAD exported); without --repo, the synthetic
history and the standard library's text are used. Prints each benchmark's Markdown tables.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> None:
    print(f"\n## python bench/{script} {' '.join(args)}\n", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repo", type=Path, action="append", default=[])
    args = parser.parse_args()
    runs = ["--runs", str(args.runs)]
    run("bench_hook.py", "--runs", str(args.runs * 4))
    run("bench_history.py", *runs)
    for repo in args.repo:
        run("bench_history.py", *runs, "--repo", str(repo))
    tree = ["--repo", str(args.repo[0])] if args.repo else []
    run("bench_scan_tree.py", "--runs", str(args.runs * 2), *tree)
    run("bench_loader.py")


if __name__ == "__main__":
    main()
