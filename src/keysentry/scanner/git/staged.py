"""The staged content: exactly the index blobs of staged additions and modifications.

What is scanned is the blob in the index, not the file on disk, so `git add -p` partial staging
is honoured. This module only finds and reads the blobs; `scans.scan_staged` searches them and
leaves out a key already in the HEAD version of the same file (or of its rename source): not
new in this commit, it is left to history scans, as a pre-commit hook is expected to do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from keysentry.scanner.git.listing import STAGED_DIFF, parse_raw
from keysentry.scanner.git.reader import MISSING, Unread, read_all
from keysentry.scanner.git.repo import Repo
from keysentry.scanner.git.run import NO_EXTERNAL, GitError


class StagedChange(NamedTuple):
    path: str
    new_id: str
    old_id: str | None  # the HEAD blob it replaces, if any

    @property
    def shown(self) -> str:
        """How a skip names it: the path and the blob, which `git cat-file` can show."""
        return f"{self.path} (staged blob {self.new_id})"


def staged_changes(repo: Repo) -> list[StagedChange]:
    if repo.work_tree is None:
        raise GitError(f"{repo.path} is a bare repository: it has no staged changes")
    try:
        raw = repo.git(*STAGED_DIFF, *NO_EXTERNAL, "HEAD")
    except GitError:
        # Asking first would cost a git process on every commit: only a failure asks why.
        if repo.has_commits():
            raise  # HEAD is there: git failed for another reason, which is no pass
        raw = repo.git(*STAGED_DIFF, *NO_EXTERNAL, repo.empty_tree)  # the first commit
    return [StagedChange(*change) for change in parse_raw(raw)]


def staged_blobs(
    repo: Repo, changes: Sequence[StagedChange], max_size: int, unread: Unread
) -> Iterator[tuple[StagedChange, bytes | int]]:
    """Each staged change with its blob's content, or its size when over `max_size` (never
    read into memory). What cannot be read goes to `unread`, by blob id."""
    by_id: dict[str, list[StagedChange]] = {}
    for change in changes:
        by_id.setdefault(change.new_id, []).append(change)
    for blob_id, answer in read_all(repo, list(by_id), unread, max_size):
        if answer is None:  # what the commit would hold cannot be read: no clean verdict
            unread.add(blob_id, MISSING)
            continue
        for change in by_id[blob_id]:
            yield change, answer


def head_blobs(repo: Repo, ids: Sequence[str], max_size: int) -> dict[str, bytes]:
    """The HEAD blobs that staged changes with keys replace, by id, to tell old keys from new.
    One that cannot be read (or is over the limit) is left out: its keys then all count as
    new, which reports more, never less."""
    answers = read_all(repo, sorted(set(ids)), Unread(), max_size)
    return {blob_id: data for blob_id, data in answers if isinstance(data, bytes)}
