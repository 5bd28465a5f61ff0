"""Archive scanning: keysentry vs betterleaks (`fs --max-archive-depth 8`, OpenAI rule only),
beside the floor an archive cannot go below: decompressing it, plus scanning its bytes.

    python bench/bench_archives.py [--rounds N]

Builds, from the standard library's text (about 32 MB, 2,000 files) with every key format
planted plain and base64-encoded: a .tar.gz of the tree, a .zip of it, and a .tar.gz of wheels
(the tree split into 20 zips, the shape of a release tarball). Each tool scans each archive in
alternating rounds (the order rotated every round, so a noisy neighbour slows all alike); the
table shows medians and what each found. The floor rows are `gzip -dc` / `unzip -p` to
/dev/null and a keysentry scan of the extracted tree.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

from common import (
    alternate,
    betterleaks_command,
    copy_stdlib,
    key_lines,
    keysentry,
    table,
)


def build_tree(root: Path, rng: random.Random) -> tuple[int, int]:
    """The corpus copied under `root` with keys planted; returns (files, planted keys)."""
    copied = copy_stdlib(root)
    planted = key_lines(rng)
    for (_, line), target in zip(planted, rng.sample(copied, len(planted)), strict=True):
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line)
    return len(copied), len(planted)


def build_archives(tree: Path, out: Path) -> dict[str, Path]:
    """The three archives of `tree`, in `out`."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    archives = {"tar.gz": out / "tree.tar.gz", "zip": out / "tree.zip"}
    with tarfile.open(archives["tar.gz"], "w:gz") as archive:
        archive.add(tree, arcname="tree")
    with zipfile.ZipFile(archives["zip"], "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(tree).as_posix())
    wheels = out / "release.tar.gz"
    with tarfile.open(wheels, "w:gz") as release:
        for index in range(20):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
                for path in files[index::20]:
                    wheel.write(path, path.relative_to(tree).as_posix())
            info = tarfile.TarInfo(f"dist/pkg{index}-1.0-py3-none-any.whl")
            info.size = buffer.tell()
            buffer.seek(0)
            release.addfile(info, buffer)
    archives["wheels in tar.gz"] = wheels
    return archives


def found_by_keysentry(path: Path) -> int:
    done = subprocess.run(
        [*keysentry(), "scan", "-q", "--format", "json", str(path)],
        capture_output=True,
        check=False,
    )
    return len(json.loads(done.stdout)["findings"])


def found_by_betterleaks(path: Path, report: Path) -> int:
    command = betterleaks_command("fs", str(path), "--max-archive-depth", "8", "-o", str(report))
    subprocess.run(command, capture_output=True, check=False)
    return len(json.loads(report.read_text())["findings"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keysentry-bench-archives-"))
    tree = work / "tree"
    files, keys = build_tree(tree, random.Random(20261201))
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    archives = build_archives(tree, work)
    report = work / "betterleaks.json"
    print(
        f"Tree: {files} files, {size / 1e6:.1f} MB, {keys} keys planted (every format, plain "
        f"and base64); median of {args.rounds} alternating rounds.\n"
    )
    floor = {
        "tar.gz": ["gzip", "-dc", str(archives["tar.gz"])],
        "zip": ["unzip", "-p", str(archives["zip"])],
        "wheels in tar.gz": ["gzip", "-dc", str(archives["wheels in tar.gz"])],
    }
    for name, path in archives.items():
        bl = betterleaks_command("fs", str(path), "--max-archive-depth", "8", "-o", str(report))
        commands = {
            "keysentry scan": [*keysentry(), "scan", "-q", "--exit-zero", str(path)],
            "betterleaks fs --max-archive-depth 8": bl,
            "decompression to /dev/null (floor)": floor[name],
            "keysentry scan of the extracted tree": [
                *keysentry(),
                "scan",
                "-q",
                "--exit-zero",
                str(tree),
            ],
        }
        runs = alternate(commands, args.rounds)
        notes = {
            "keysentry scan": f"found {found_by_keysentry(path)} of {keys}",
            "betterleaks fs --max-archive-depth 8": (
                f"found {found_by_betterleaks(path, report)} of {keys}"
            ),
        }
        rows = [(tool, runs[tool], notes.get(tool, "")) for tool in commands]
        print(f"### {name} ({path.stat().st_size / 1e6:.1f} MB)\n")
        print(table(rows, ["betterleaks fs --max-archive-depth 8"]))
        print()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
