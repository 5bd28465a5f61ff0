"""Commit ranges (`--since REV`, `--range A..B`): only the blobs those commits introduced.

For CI and pre-push. A range whose start is all zeros (a new branch) or a commit this clone
does not have (the old tip of a force push) covers the commits of B that no remote-tracking
branch or tag other than B itself reaches. Merges are diffed against their first parent, so
what a merge brings in is scanned as introduced by the merge.
"""

from __future__ import annotations

from dataclasses import dataclass

from keysentry.scanner.findings import Blob, Finding, findings_in
from keysentry.scanner.provenance import Commit, CommitLog
from keysentry.scanner.sources.git import BlobReader, GitError, Repo, shallow_error


@dataclass(frozen=True)
class RangeScan:
    findings: list[Finding]
    commits: int
    blobs: int
    bytes: int


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


def scan_range(repo: Repo, revs: list[str], inline_allow: bool) -> RangeScan:
    """One finding per key and path among the blobs the range's commits introduced, with the
    first commit in the range that introduced it."""
    introduced: dict[str, tuple[Commit, str]] = {}  # blob -> (first commit, path)
    paths_of: dict[str, set[str]] = {}
    commits = 0
    for commit, changes in CommitLog(repo, *revs).commits():
        commits += 1
        for change in changes:
            if set(change.new_id) == {"0"}:
                continue  # a deletion
            introduced.setdefault(change.new_id, (commit, change.path))
            paths_of.setdefault(change.new_id, set()).add(change.path)
    findings: dict[tuple[str, str], Finding] = {}
    size = 0
    with BlobReader(repo) as reader:
        for blob_id, data in reader.read(introduced):
            if data is None:
                continue  # a submodule commit, or a missing object
            size += len(data)
            found = findings_in(Blob(blob_id, data), inline_allow)
            commit, _ = introduced[blob_id]
            for path in sorted(paths_of[blob_id]):
                for finding in found:
                    timeline = {
                        "blob": blob_id,
                        "introduced": {**commit.describe(), "path": path, "line": finding.line},
                    }
                    findings.setdefault(
                        (finding.fingerprint, path),
                        finding._replace(path=path, provenance={"git": timeline}),
                    )
    return RangeScan(list(findings.values()), commits, len(introduced), size)
