"""The staged content: exactly the index blobs of staged additions and modifications.

What is scanned is the blob in the index, not the file on disk, so `git add -p` partial staging
is honoured. A key already in the HEAD version of the same file (or of its rename source) is
not new in this commit and is left to history scans, as a pre-commit hook is expected to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

from keysentry.scanner.findings import Blob, Finding, findings_in
from keysentry.scanner.sources.git import BlobReader, GitError, Repo

_GITLINK = "160000"  # a submodule entry: a commit id, not content


class StagedChange(NamedTuple):
    path: str
    new_id: str
    old_id: str | None  # the HEAD blob it replaces, if any


def staged_changes(repo: Repo) -> list[StagedChange]:
    if repo.work_tree is None:
        raise GitError(f"{repo.path} is a bare repository: it has no staged changes")
    base = "HEAD" if repo.has_commits() else repo.empty_tree
    raw = repo.git("diff-index", "--cached", "-z", "--no-abbrev", "-M", "--diff-filter=ACMRT", base)
    return list(_parse_raw(raw))


def _parse_raw(raw: bytes) -> Iterator[StagedChange]:
    tokens = raw.split(b"\0")
    i = 0
    while i < len(tokens) and tokens[i].startswith(b":"):
        _, new_mode, old_id, new_id, status = tokens[i][1:].decode().split(" ")
        if status[0] in "RC":  # renames and copies name the source, then the destination
            path, i = os.fsdecode(tokens[i + 2]), i + 3
        else:
            path, i = os.fsdecode(tokens[i + 1]), i + 2
        if new_mode == _GITLINK:
            continue
        old = None if set(old_id) == {"0"} else old_id
        yield StagedChange(path, new_id, old)


def staged_findings(repo: Repo, inline_allow: bool) -> tuple[list[Finding], int, int]:
    """Findings new in the staged content, and how many blobs and bytes were scanned."""
    changes = staged_changes(repo)
    found: list[Finding] = []
    scanned = size = 0
    with BlobReader(repo) as reader:
        hits = []
        for change, (_, data) in zip(changes, reader.read(c.new_id for c in changes), strict=True):
            if data is None:
                continue
            scanned += 1
            size += len(data)
            in_blob = findings_in(Blob(change.path, data), inline_allow)
            if in_blob:
                hits.append((change, in_blob))
        old_ids = [c.old_id for c, _ in hits if c.old_id is not None]
        before = dict(reader.read(old_ids)) if old_ids else {}
    for change, in_blob in hits:
        old = before.get(change.old_id) if change.old_id else None
        known = {f.fingerprint for f in findings_in(Blob(change.path, old))} if old else set()
        found += [f for f in in_blob if f.fingerprint not in known]
    return found, scanned, size
