"""Hostile file names against the scan's command line: what pre-commit appends to the hook's
arguments is a name from the repository, and a name must never act as an option."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

from leaks import assert_nowhere

from keygen import key_of
from keysentry.scanner.keys import KeyKind


def test_a_file_named_like_an_option_is_scanned_under_pre_commit_never_obeyed(
    tmp_path: Path, rng: random.Random
) -> None:
    """pre-commit appends file names to the hook's arguments: a committed `--exit-zero` must
    not turn the hook into a pass, nor `--help` or `-` (stdin) hide the other files."""
    key = key_of(KeyKind.PROJECT, rng).key
    names = ["--exit-zero", "--help", "-"]
    for name in names:
        (tmp_path / name).write_text(f"K = '{key}'\n")
    done = subprocess.run(
        [sys.executable, "-m", "keysentry", "scan", "--pre-commit", "--quiet", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stderr
    shown = sorted(line.split(":")[0] for line in done.stdout.splitlines())
    assert shown == ["./-", "./--exit-zero", "./--help"]
    assert_nowhere(key, done.stdout, done.stderr)


def test_the_gitignored_key_check_never_follows_a_symlink_out_nor_waits_on_a_fifo(
    repo: Path, tmp_path: Path, rng: random.Random
) -> None:
    """The check reads gitignored files a repository's author named: a symlink to a key
    outside the scanned directory is not read (nor counted), a FIFO never blocks the scan."""
    import os

    key = key_of(KeyKind.PROJECT, rng).key
    outside = tmp_path / "outside.txt"
    outside.write_text(f"{key}\n")
    (repo / ".gitignore").write_text("*.env\n")
    (repo / "link.env").symlink_to(outside)
    os.mkfifo(repo / "pipe.env")
    done = subprocess.run(
        [sys.executable, "-m", "keysentry", "scan", "-v", "."],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "holds a key" not in done.stderr
    assert_nowhere(key, done.stdout, done.stderr)
