"""Commit ranges (`--since REV`, `--range A..B`): only the blobs those commits introduced.

This module finds and reads them; `scans.scan_commits` searches them.

For CI and pre-push. A range whose start is all zeros (a new branch) or a commit this clone
does not have (the old tip of a force push) covers the commits of B that no remote-tracking
branch or tag other than B itself reaches. Merges are diffed against their first parent, so
what a merge brings in is scanned as introduced by the merge.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from keysentry.scanner.git.listing import GITLINK
from keysentry.scanner.git.provenance import Commit, CommitLog
from keysentry.scanner.git.reader import MISSING, Unread, read_all
from keysentry.scanner.git.repo import Repo, shallow_error
from keysentry.scanner.git.run import GitError


class Introduced(NamedTuple):
    """A blob the range's commits introduced: the first commit that did, and every path."""

    commit: Commit
    paths: set[str]


def parse_range(repo: Repo, span: str, strict: bool) -> tuple[list[str], str | None]:
    """The `git log` revision arguments for a range, and a note when it was reinterpreted.
    `strict` (a shallow clone): a range whose start is unknown cannot be covered: fail."""
    start, sep, end = span.partition("..")
    if not sep or not end or end.startswith("."):
        raise GitError(f"--range takes A..B, got {span!r}")
    tip = repo.resolve(end)
    if start and set(start) != {"0"}:
        try:
            return [f"{repo.resolve(start)}..{tip}"], None
        except GitError:
            if strict:
                raise shallow_error(repo, f"the range {span}") from None
            note = f"{start} is not in this clone (a force push?): scanning what {end} adds"
    else:
        if strict:
            raise shallow_error(repo, f"the new branch {end}")
        note = f"{end} is a new branch: scanning its commits that no other branch or tag has"
    others = [c for name, c in repo.refs() if name.startswith(("refs/remotes/", "refs/tags/"))]
    return [tip, "--not", *sorted({c for c in others if c != tip})], note


def introduced_blobs(repo: Repo, revs: list[str]) -> tuple[dict[str, Introduced], int]:
    """Every blob the range's commits introduced, by id, and how many commits it holds."""
    introduced: dict[str, Introduced] = {}
    commits = 0
    for commit, changes in CommitLog(repo, *revs).commits():
        commits += 1
        for change in changes:
            if set(change.new_id) == {"0"} or change.new_mode == GITLINK:
                continue  # a deletion, or a submodule's commit: no content of this repository
            introduced.setdefault(change.new_id, Introduced(commit, set())).paths.add(change.path)
    return introduced, commits


def range_blobs(
    repo: Repo, introduced: dict[str, Introduced], max_size: int, unread: Unread
) -> Iterator[tuple[str, bytes | int]]:
    """Each introduced blob's content, or its size when over `max_size` (never read into
    memory); one that cannot be read, or is not in the object database (a partial clone's),
    goes to `unread`: what the range added is then not known clean."""
    for blob_id, answer in read_all(repo, list(introduced), unread, max_size):
        if answer is None:
            unread.add(blob_id, MISSING)
        else:
            yield blob_id, answer
