"""The exposure timeline of each leaked key, computed only for the blobs that hold one.

One pass over `git log --all --raw` (oldest first, merges diffed against their first parent,
renames as delete + add) replays, for every commit, which paths hold a hit blob. From that
replay, for each key and path: the commit that introduced it, the commit that removed it, how
many commits carry it, whether HEAD and the working tree still hold it, and which refs reach a
commit that carries it (anyone who fetches such a ref has the key).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Iterator
from typing import Any, NamedTuple

from keysentry.scanner.findings import Blob, Finding, IncompleteBlob, findings_in
from keysentry.scanner.git.repo import Repo
from keysentry.scanner.git.run import NO_EXTERNAL, GitError, nul_tokens, popen_git
from keysentry.scanner.pipeline import detect_in
from keysentry.scanner.precheck import is_archive
from keysentry.scanner.sources.archives import rerooted

_NO_KEYS: frozenset[str] = frozenset()
_TIMELINE_ORDER = (
    "blob",
    "introduced",
    "removed",
    "at_head",
    "in_working_tree",
    "refs",
    "commits",
    "paths",
    "reachable",
)
_LOG_FORMAT = "%x01%H %P%x00%an%x00%ae%x00%aI"


# Tuples and plain classes, not dataclasses: a cached rescan imports this module, and
# `dataclasses` alone would cost it 2.5 ms.
class Commit(NamedTuple):
    id: str
    parents: tuple[str, ...]
    author: str
    email: str
    date: str

    def describe(self) -> dict[str, str]:
        return {"commit": self.id, "author": self.author, "email": self.email, "date": self.date}


class Change(NamedTuple):
    path: str
    old_id: str
    new_id: str
    new_mode: str = ""  # 160000: a submodule's commit, not a blob


class CommitLog:
    """`git log --raw` of some revisions, oldest first, merges diffed against their first
    parent, renames as delete + add. git writes it to a temp file in the background, so that
    a history scan can start it before reading blobs and the two overlap (measured: 0.2 s of
    0.7 s on a 2,000-commit history); memory stays flat whatever the log's size."""

    def __init__(self, repo: Repo, *revs: str) -> None:
        import tempfile  # here: a cached rescan reads no log

        # Owned by this object past __init__, closed by cancel(): no `with` can hold them.
        self._out = tempfile.TemporaryFile()  # noqa: SIM115
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._process = popen_git(
                repo.path,
                "log",
                *revs,
                "-z",
                "--raw",
                "--no-abbrev",
                "--no-renames",
                "--diff-merges=first-parent",
                "--topo-order",
                "--reverse",
                "--root",
                "--no-show-signature",
                *NO_EXTERNAL,
                f"--format={_LOG_FORMAT}",
                "--",
                stdout=self._out,
                stderr=self._err,
            )
        except GitError:
            self._out.close()
            self._err.close()
            raise

    def cancel(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._out.close()
        self._err.close()

    def commits(self, only: Collection[str] | None = None) -> Iterator[tuple[Commit, list[Change]]]:
        """Each commit with its raw changes; with `only`, just the changes to or from those
        blob ids (the rest is never parsed)."""
        if self._process.wait() != 0:
            self._err.seek(0)
            lines = self._err.read().decode("utf-8", "replace").strip().splitlines()
            self.cancel()
            raise GitError(f"git log failed: {lines[-1].removeprefix('fatal: ') if lines else ''}")
        self._out.seek(0)
        try:
            yield from _parse_log(nul_tokens(self._out), only)
        finally:
            self.cancel()


class LazyCommitLog:
    """A CommitLog started only when a history scan first finds a key (`start`, called from
    any reader thread): a history with no key never pays for `git log --all --raw` (0.9 CPU-s
    on a 24,000-commit history), and one with keys still overlaps it with the rest of the
    reading."""

    def __init__(self, repo: Repo, *revs: str) -> None:
        self._repo, self._revs = repo, revs
        self._log: CommitLog | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._log is None:
                self._log = CommitLog(self._repo, *self._revs)

    def started(self) -> CommitLog:
        self.start()
        assert self._log is not None
        return self._log

    def cancel(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.cancel()


def _parse_log(
    tokens: Iterator[bytes], only: Collection[str] | None
) -> Iterator[tuple[Commit, list[Change]]]:
    commit: Commit | None = None
    changes: list[Change] = []
    for token in tokens:
        token = token.lstrip(b"\n")
        if token.startswith(b"\x01"):
            if commit is not None:
                yield commit, changes
            commit_id, *parents = token[1:].decode().split(" ")
            author, email, date = (next(tokens).decode("utf-8", "replace") for _ in range(3))
            commit = Commit(commit_id, tuple(p for p in parents if p), author, email, date)
            changes = []
        elif token.startswith(b":"):
            path = next(tokens)
            fields = token[1:].split(b" ")
            old_id, new_id = fields[2].decode(), fields[3].decode()
            if only is None or old_id in only or new_id in only:
                changes.append(Change(os.fsdecode(path), old_id, new_id, fields[1].decode()))
    if commit is not None:
        yield commit, changes


class _Exposure:
    """What the replay learns about one key at one path."""

    __slots__ = ("introduced", "introduced_blob", "removed")

    def __init__(self) -> None:
        self.introduced: Commit | None = None
        self.introduced_blob = ""
        self.removed: Commit | None = None


class _Replay:
    def __init__(self, keys_of_blob: dict[str, frozenset[str]]) -> None:
        self.keys_of_blob = keys_of_blob
        self.state: dict[str, dict[str, str]] = {}  # commit -> {path: hit blob}
        self.ever: dict[str, frozenset[str]] = {}  # keys in commit or ancestors
        self.exposures: dict[tuple[str, str], _Exposure] = {}
        self.carried_by: dict[str, int] = {}  # key -> commits carrying it
        self.paths_of: dict[str, set[str]] = {}

    def keys_at(self, state: dict[str, str], path: str) -> frozenset[str]:
        blob = state.get(path)
        return self.keys_of_blob.get(blob, _NO_KEYS) if blob else _NO_KEYS

    def apply(self, commit: Commit, changes: list[Change]) -> None:
        before = self.state.get(commit.parents[0], {}) if commit.parents else {}
        tracked = [
            c for c in changes if c.new_id in self.keys_of_blob or c.old_id in self.keys_of_blob
        ]
        after = before
        if tracked:
            after = dict(before)
            for change in tracked:
                if change.new_id in self.keys_of_blob:
                    after[change.path] = change.new_id
                else:
                    after.pop(change.path, None)
            for change in tracked:
                self._events(commit, change.path, before, after)
        self.state[commit.id] = after
        carried = frozenset().union(*(self.keys_of_blob[b] for b in after.values()))
        for key in carried:
            self.carried_by[key] = self.carried_by.get(key, 0) + 1
        for path, blob in after.items():
            for key in self.keys_of_blob[blob]:
                self.paths_of.setdefault(key, set()).add(path)
        inherited = [self.ever.get(p, _NO_KEYS) for p in commit.parents]
        self.ever[commit.id] = carried.union(*inherited) if carried or any(inherited) else _NO_KEYS

    def _events(
        self, commit: Commit, path: str, before: dict[str, str], after: dict[str, str]
    ) -> None:
        had, has = self.keys_at(before, path), self.keys_at(after, path)
        for key in has - had:
            exposure = self.exposures.setdefault((key, path), _Exposure())
            if exposure.introduced is None:
                exposure.introduced, exposure.introduced_blob = commit, after[path]
        for key in had - has:
            exposure = self.exposures.setdefault((key, path), _Exposure())
            if exposure.removed is None:
                exposure.removed = commit


def history_findings(
    repo: Repo,
    log: CommitLog,
    hit_blobs: dict[str, bytes],
    *,
    inline_allow: bool,
    all_objects: bool,
    checkpoint: dict[str, Any] | None = None,
) -> list[Finding]:
    """One finding per distinct key and path, with its exposure timeline under `git`; `log`
    is the `--all` log started before the blobs were read. `checkpoint` receives what a later
    scan needs to replay only the commits added since (`extend_findings`)."""
    in_blob = {b: _found(b, data, inline_allow) for b, data in hit_blobs.items()}
    keys_of_blob = {b: frozenset(f.fingerprint for f in found) for b, found in in_blob.items()}
    replay = _Replay({b: k for b, k in keys_of_blob.items() if k})
    for commit, changes in log.commits(only=replay.keys_of_blob):
        replay.apply(commit, changes)
    refs = repo.refs()
    if checkpoint is not None:
        checkpoint.update(_checkpoint(replay, refs))
    return _timelines(repo, replay, in_blob, refs, all_objects)


def _timelines(
    repo: Repo,
    replay: _Replay,
    in_blob: dict[str, list[Finding]],
    refs: list[tuple[str, str]],
    all_objects: bool,
) -> list[Finding]:
    head = next((c for name, c in refs if name == "HEAD"), None)
    head_state = replay.state.get(head, {}) if head else {}
    working = _WorkingTree(repo)
    findings: list[Finding] = []
    for (key, path), exposure in sorted(replay.exposures.items(), key=lambda e: e[0][1]):
        if exposure.introduced is None:
            continue  # removed without ever being added: the parent graph is cut (shallow)
        first = next(f for f in in_blob[exposure.introduced_blob] if f.fingerprint == key)
        timeline: dict[str, Any] = {
            "blob": exposure.introduced_blob,
            "introduced": {**exposure.introduced.describe(), "path": path, "line": first.line},
            "removed": exposure.removed.describe() if exposure.removed else None,
            "at_head": key in replay.keys_at(head_state, path),
            "in_working_tree": working.holds(path, key),
            "refs": sorted(name for name, c in refs if key in replay.ever.get(c, _NO_KEYS)),
            "commits": replay.carried_by.get(key, 0),
            "paths": sorted(replay.paths_of.get(key, ())),
            "reachable": True,
        }
        provenance = {**first.provenance, "git": timeline}
        findings.append(first._replace(path=rerooted(first, path), provenance=provenance))
    if all_objects:
        findings += _unreachable(in_blob, replay)
    return findings


def _checkpoint(replay: _Replay, refs: list[tuple[str, str]]) -> dict[str, Any]:
    """The replay's state at every ref's commit, and what it learnt: enough to go on replaying
    commits added on top of those (no key, only fingerprints, paths and commit ids)."""
    tips = sorted({c for _, c in refs if c in replay.state})

    def described(commit: Commit | None) -> dict[str, str] | None:
        return commit.describe() if commit else None

    return {
        "state": {c: replay.state[c] for c in tips},
        "ever": {c: sorted(replay.ever.get(c, _NO_KEYS)) for c in tips},
        "exposures": [
            [key, path, described(e.introduced), e.introduced_blob, described(e.removed)]
            for (key, path), e in replay.exposures.items()
        ],
        "carried_by": replay.carried_by,
        "paths_of": {key: sorted(paths) for key, paths in replay.paths_of.items()},
    }


def _restored(keys_of_blob: dict[str, frozenset[str]], checkpoint: dict[str, Any]) -> _Replay:
    def commit(described: dict[str, str] | None) -> Commit | None:
        if described is None:
            return None
        return Commit(
            described["commit"], (), described["author"], described["email"], described["date"]
        )

    replay = _Replay(keys_of_blob)
    replay.state = {c: dict(state) for c, state in checkpoint["state"].items()}
    replay.ever = {c: frozenset(keys) for c, keys in checkpoint["ever"].items()}
    for key, path, introduced, blob, removed in checkpoint["exposures"]:
        exposure = _Exposure()
        exposure.introduced, exposure.introduced_blob = commit(introduced), blob
        exposure.removed = commit(removed)
        replay.exposures[(key, path)] = exposure
    replay.carried_by = dict(checkpoint["carried_by"])
    replay.paths_of = {key: set(paths) for key, paths in checkpoint["paths_of"].items()}
    return replay


def extend_findings(
    repo: Repo,
    checkpoint: dict[str, Any],
    added: list[tuple[Commit, list[Change]]],
    hit_blobs: dict[str, bytes],
    refs: list[tuple[str, str]],
    inline_allow: bool,
) -> tuple[list[Finding], dict[str, Any]] | None:
    """The findings of a history that grew by the commits `added` (oldest first, every one of
    them not reachable from the refs of the scan that left `checkpoint`), and the new
    checkpoint; None when the replay cannot go on from where it stopped (a commit whose parent
    it never saw, a ref at a commit it does not know), so the caller replays everything.

    Old commits come before new ones in this order, as in `git log --topo-order --reverse`
    (no old commit descends from a new one), so the result is the full replay's; only where
    a key was introduced on two unrelated lines of history may the other one be named."""
    in_blob = {b: _found(b, data, inline_allow) for b, data in hit_blobs.items()}
    keys_of_blob = {b: frozenset(f.fingerprint for f in found) for b, found in in_blob.items()}
    replay = _restored({b: k for b, k in keys_of_blob.items() if k}, checkpoint)
    for commit, changes in added:
        if any(parent not in replay.state for parent in commit.parents):
            return None
        replay.apply(commit, changes)
    if any(c not in replay.state for _, c in refs):
        return None  # a ref at a commit the replay never saw (a new tag on an old commit)
    return _timelines(repo, replay, in_blob, refs, False), _checkpoint(replay, refs)


def _found(blob_id: str, data: bytes, inline_allow: bool) -> list[Finding]:
    """The findings in a hit blob. One the detector could not search in full was named as
    unreadable by the scan that read it (whose result is then not cached): here only the keys
    it found matter."""
    if is_archive(data):
        return detect_in(Blob(blob_id, data), inline_allow, [])
    try:
        return findings_in(Blob(blob_id, data), inline_allow)
    except IncompleteBlob as exc:
        return exc.findings


def timeline_records(findings: list[Finding]) -> list[dict[str, Any]]:
    """What the result cache keeps of history findings: no key, no working-tree state."""
    return [
        {
            "fingerprint": f.fingerprint,
            "path": f.path,
            "git": {k: v for k, v in f.provenance["git"].items() if k != "in_working_tree"},
        }
        for f in findings
    ]


def rebuild_findings(
    repo: Repo, hit_blobs: dict[str, bytes], records: list[dict[str, Any]], inline_allow: bool
) -> list[Finding] | None:
    """History findings from a cached timeline and the re-read hit blobs; None when a record
    no longer matches its blob (the cache is then not trusted)."""
    in_blob = {b: _found(b, data, inline_allow) for b, data in hit_blobs.items()}
    working = _WorkingTree(repo)
    findings = []
    for record in records:
        key, path, timeline = record["fingerprint"], record["path"], dict(record["git"])
        first = next((f for f in in_blob.get(timeline["blob"], []) if f.fingerprint == key), None)
        if first is None:
            return None
        timeline["in_working_tree"] = working.holds(path, key)
        ordered = {name: timeline[name] for name in _TIMELINE_ORDER if name in timeline}
        provenance = {**first.provenance, "git": ordered}
        findings.append(first._replace(path=path, provenance=provenance))
    return findings


def _unreachable(in_blob: dict[str, list[Finding]], replay: _Replay) -> list[Finding]:
    reached = {e.introduced_blob for e in replay.exposures.values()}
    findings = []
    for blob, found in sorted(in_blob.items()):
        if blob in reached:
            continue
        for finding in found:
            timeline = {"blob": blob, "reachable": False}
            path = rerooted(finding, f"<unreachable blob {blob}>")
            provenance = {**finding.provenance, "git": timeline}
            findings.append(finding._replace(path=path, provenance=provenance))
    return findings


class _WorkingTree:
    """Whether the file at a path in the work tree still holds a key (None: bare repo)."""

    def __init__(self, repo: Repo) -> None:
        self._root = repo.work_tree
        self._keys: dict[str, frozenset[str]] = {}

    def holds(self, path: str, key: str) -> bool | None:
        if self._root is None:
            return None
        if path not in self._keys:
            try:
                with open(os.path.join(self._root, path), "rb") as handle:
                    found = _found(path, handle.read(), True)
                self._keys[path] = frozenset(f.fingerprint for f in found)
            except OSError:
                self._keys[path] = _NO_KEYS
        return key in self._keys[path]
