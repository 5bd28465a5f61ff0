"""The gitignored files that hold a key: counted, so that a scan can say what it left out.

A directory scan inside a git work tree honours `.gitignore`, and `.env` files, the usual home
of a key, are gitignored: skipping them without a word would make a clean summary mislead.
`git ls-files --others --ignored --exclude-standard --directory` names each ignored file (an
ignored directory, `node_modules/` or `.venv/`, is one entry and is not descended), and each
such file is read only to ask the detector whether it holds a key; nothing is reported from it.
Files the user excluded (`--exclude`, `[scan] exclude`) are never read, and files larger than
`MAX_CHECKED`, or past `MAX_TOTAL_CHECKED` bytes read in all (a tree of many ignored logs
would otherwise cost the scan far more than what it scans), are not read either: they are
counted as unchecked.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import NamedTuple

from keysentry.scanner.findings import Blob, IncompleteBlob, findings_in
from keysentry.scanner.sources.files import FileEntry, FileSource, may_be_in_work_tree

# A file of keys is small; reading a large ignored build artefact only to count it is not
# worth its time.
MAX_CHECKED = 1 << 20
MAX_TOTAL_CHECKED = 64 << 20


class Ignored(NamedTuple):
    with_keys: list[str]  # as a scan of `directory` would show them
    unchecked: int  # too large to check


def ignored_with_keys(directory: str, exclude: Sequence[str]) -> Ignored | None:
    """The gitignored files under `directory` that hold a key; None outside a work tree."""
    if not may_be_in_work_tree(directory):
        return None
    from keysentry.scanner.git.run import GitError, run_git  # here: only a work tree needs git

    try:
        listing = run_git(
            directory,
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
            "--no-empty-directory",
        )
    except GitError:
        return None
    source = FileSource([directory], max_file_size=MAX_CHECKED)
    root = os.path.realpath(directory)
    found: list[str] = []
    unchecked = 0
    budget = MAX_TOTAL_CHECKED
    for name in filter(None, listing.split(b"\0")):
        rel = os.fsdecode(name)
        if rel.endswith("/") or _excluded(rel, exclude):
            continue  # an ignored directory, or a file the user excluded: never read
        entry = FileEntry(os.path.normpath(os.path.join(directory, rel)), root)
        if _size(entry.path) > budget:
            unchecked += 1
            continue
        blob = source.read(entry)
        if isinstance(blob, Blob):
            budget -= len(blob.data)
            if _holds_key(blob):
                found.append(entry.path)
        elif blob is not None and "size limit" in blob.reason:
            unchecked += 1
    return Ignored(sorted(found), unchecked)


def _size(path: str) -> int:
    """The size of the file at `path` (not following a link); 0 when it cannot be told, and
    the read then says why."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    rel = rel.replace(os.sep, "/")
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


def _holds_key(blob: Blob) -> bool:
    try:
        return bool(findings_in(blob, inline_allow=False))
    except IncompleteBlob as exc:
        return bool(exc.findings)
