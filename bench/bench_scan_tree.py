"""Working-tree scan: keysentry vs betterleaks (OpenAI rule only) vs ripgrep (the floor).

    python bench/bench_scan_tree.py [--runs N]

Builds a tree from the standard library's text (about 32 MB, 2,000 files) outside any git
work tree, plants every key format plain and base64-encoded, then times each tool on it in
turns, and checks what each one found.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (
    betterleaks_command,
    key_lines,
    keysentry,
    median_seconds,
    real_text_files,
    real_text_root,
    ripgrep,
    table,
)


def build_tree(root: Path, rng: random.Random) -> tuple[int, int]:
    """Copy the corpus under `root` and plant keys; returns (files, planted keys)."""
    source_root = real_text_root()
    copied = []
    for path in real_text_files():
        dest = root / path.relative_to(source_root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        copied.append(dest)
    planted = key_lines(rng)
    for (_, line), target in zip(planted, rng.sample(copied, len(planted)), strict=True):
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line)
    return len(copied), len(planted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keysentry-bench-"))
    tree = work / "tree"
    files, keys = build_tree(tree, random.Random(20261128))
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    report = work / "betterleaks.json"
    commands = {
        "keysentry scan": [*keysentry(), "scan", "-q", str(tree)],
        "betterleaks fs (openai rule)": betterleaks_command("fs", str(tree), "-o", str(report)),
        "rg -c T3BlbkFJ (floor)": [ripgrep(), "-c", "T3BlbkFJ", str(tree)],
        "python -c pass (interpreter start-up)": [sys.executable, "-c", "pass"],
        "keysentry --version (start-up)": [*keysentry(), "--version"],
    }
    found = {
        "keysentry scan": len(
            json.loads(
                subprocess.run(
                    [*keysentry(), "scan", "-q", "--format", "json", str(tree)],
                    capture_output=True,
                    check=False,
                ).stdout
            )["findings"]
        ),
    }
    subprocess.run(commands["betterleaks fs (openai rule)"], capture_output=True, check=False)
    found["betterleaks fs (openai rule)"] = len(json.loads(report.read_text())["findings"])
    medians = {name: 0.0 for name in commands}
    for name, command in commands.items():
        medians[name] = median_seconds(command, args.runs)
    rows = [
        (name, medians[name], f"found {found[name]} of {keys} planted" if name in found else "")
        for name in commands
    ]
    print(
        f"Tree: {files} files, {size / 1e6:.1f} MB; {keys} keys planted "
        f"(every format, plain and base64); median of {args.runs} runs.\n"
    )
    print(table(rows, ["rg -c T3BlbkFJ (floor)", "betterleaks fs (openai rule)"]))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
