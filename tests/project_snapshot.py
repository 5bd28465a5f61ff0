"""This repository as it is now, uncommitted changes included, as a git repo of its own: what
pre-commit installs a hook from, in the tests and the hook benchmark."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def snapshot(dest: Path, git: list[str]) -> str:
    """Copy the tracked and untracked-but-not-ignored files to `dest`, commit them with the
    `git` command line given (identity and all), and return the commit id."""
    listed = subprocess.run(
        ["git", "-C", str(PROJECT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = PROJECT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, "-C", str(dest), *args], check=True, capture_output=True)
    return subprocess.run([*git, "-C", str(dest), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
