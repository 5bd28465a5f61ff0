"""Working-tree scan: keysentry vs betterleaks (OpenAI rule only) vs ripgrep (the floor).

    python bench/bench_scan_tree.py [--runs N] [--repo PATH]

The tree is an export of a real repository's HEAD (`git archive HEAD | tar -x`: files only, no
`.git/`, which betterleaks would read too) when --repo is given, else the standard library's
text (about 32 MB, 2,000 files). Every key format is planted in it plainly and base64-encoded,
outside any git work tree; then each tool is timed, round by round, and what each found is
checked against what was planted: a planted key counts as found only when the tool reports
that key in the file it was planted in (a false positive finds nothing).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from common import (
    alternate,
    betterleaks_command,
    copy_stdlib,
    key_lines,
    keysentry,
    ripgrep,
    table,
)


def export_head(repo: Path, root: Path) -> list[Path]:
    """The files of `repo`'s HEAD, as `git archive HEAD | tar -x` writes them."""
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", "HEAD"], capture_output=True, check=True
    ).stdout
    root.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def plant(
    files: list[Path], root: Path, rng: random.Random
) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """Append each key line to a file of its own; returns the (path, key) pairs planted and
    each key's format (its prefix and length, to name misses without printing a key)."""
    planted = set()
    formats = {}
    lines = key_lines(rng)
    for (key, line), target in zip(lines, rng.sample(files, len(lines)), strict=True):
        with open(target, "a", encoding="utf-8") as handle:
            handle.write("\n" + line)
        planted.add((os.path.relpath(target, root), key.key))
        formats[key.key] = f"{key.prefix} ({len(key.key)} chars)"
    return planted, formats


def keysentry_found(tree: Path) -> set[tuple[str, str]]:
    """(path, key) of every finding, the keys revealed only inside this process."""
    done = subprocess.run(
        [*keysentry(), "scan", "-q", "--format", "json", "--show-secrets", "."],
        cwd=tree,
        capture_output=True,
        check=False,
    )
    findings = json.loads(done.stdout)["findings"]
    return {(os.path.normpath(f["path"].split("!")[0]), f["secret"]) for f in findings}


def betterleaks_found(report: Path) -> set[tuple[str, str]]:
    findings = json.loads(report.read_text())["findings"]
    return {(os.path.normpath(f["location"]["path"]), f["match"]["value"]) for f in findings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repo", type=Path, help="export this repository's HEAD as the tree")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keysentry-bench-"))
    tree = work / "tree"
    if args.repo:
        files, what = export_head(args.repo, tree), f"{args.repo.resolve().name} HEAD (git archive)"
    else:
        tree.mkdir()
        files, what = copy_stdlib(tree), "the standard library's text"
    planted, formats = plant(files, tree, random.Random(20261128))
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    report = work / "betterleaks.json"
    commands = {
        "keysentry scan": [*keysentry(), "scan", "-q", "."],
        "betterleaks fs (openai rule)": betterleaks_command("fs", ".", "-o", str(report)),
        "rg -c T3BlbkFJ (floor)": [ripgrep(), "-c", "T3BlbkFJ", "."],
        "python -c pass (interpreter start-up)": [sys.executable, "-c", "pass"],
    }
    subprocess.run(commands["betterleaks fs (openai rule)"], cwd=tree, capture_output=True)
    found = {
        "keysentry scan": keysentry_found(tree) & planted,
        "betterleaks fs (openai rule)": betterleaks_found(report) & planted,
    }
    runs = alternate(commands, args.runs, cwd=tree)
    rows = [
        (
            name,
            runs[name],
            f"found {len(found[name])} of {len(planted)} planted" if name in found else "",
        )
        for name in commands
    ]
    print(
        f"Tree: {what}, {len(files):,} files, {size / 1e6:.1f} MB; {len(planted)} keys planted "
        f"(every format, plain and base64); median of {args.runs} alternating rounds.\n"
    )
    print(table(rows, ["rg -c T3BlbkFJ (floor)", "betterleaks fs (openai rule)"]))
    for name, hits in found.items():
        missed = sorted({formats[key] for _, key in planted - hits})
        print(f"\n{name} missed: {', '.join(missed) or 'none'}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
