"""Run a source through the detector and the suppressions into a ScanResult.

Source -> Blob -> findings_in -> Finding -> suppression -> ScanResult; reports only read the
result.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from keysentry.scanner.cache import CleanBlobCache
from keysentry.scanner.findings import Blob, Finding, findings_in
from keysentry.scanner.provenance import history_findings
from keysentry.scanner.sources.files import FileEntry, FileSource, Skip
from keysentry.scanner.sources.git import Repo
from keysentry.scanner.sources.history import read_blobs, scan_blobs
from keysentry.scanner.sources.ranges import parse_range, scan_range
from keysentry.scanner.sources.staged import staged_findings
from keysentry.scanner.suppress import IgnoreRules


@dataclass(frozen=True)
class Suppression:
    inline_allow: bool = True
    ignore: IgnoreRules = field(default_factory=IgnoreRules)
    baseline: frozenset[str] = frozenset()


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)  # what the report shows
    unsuppressed: list[Finding] = field(default_factory=list)  # before the baseline, for updates
    suppressed: Counter[str] = field(default_factory=Counter)  # by reason
    skipped: list[Skip] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the user should know about coverage

    @property
    def unreadable(self) -> int:
        return sum(1 for s in self.skipped if s.unreadable)

    def add(self, found: Iterable[Finding], suppression: Suppression) -> None:
        for finding in found:
            if finding.inline_allowed:
                self.suppressed["inline allow"] += 1
            elif suppression.ignore.ignores(finding):
                self.suppressed["ignore file"] += 1
            else:
                self.unsuppressed.append(finding)
                if finding.fingerprint in suppression.baseline:
                    self.suppressed["baseline"] += 1
                else:
                    self.findings.append(finding)


def scan_files(source: FileSource, suppression: Suppression) -> ScanResult:
    """Scan every file of `source`, over the cores when there are enough files."""
    started = time.perf_counter()
    result = ScanResult()
    entries: list[FileEntry] = []
    for item in source.entries():
        if isinstance(item, Skip):
            result.skipped.append(item)
        else:
            entries.append(item)
    # One thread: per-file work holds the GIL, and measured with threads it was 1.5-2x slower.
    scanned = [_read_and_detect(source, e, suppression) for e in entries]
    for blob, found in scanned:
        if isinstance(blob, Skip):
            result.skipped.append(blob)
        elif blob is not None:
            result.blobs += 1
            result.bytes += len(blob.data)
            result.add(found, suppression)
    result.findings.sort(key=_position)
    result.unsuppressed.sort(key=_position)
    result.skipped.sort(key=lambda s: s.path)
    result.seconds = time.perf_counter() - started
    return result


def _read_and_detect(
    source: FileSource, entry: FileEntry, suppression: Suppression
) -> tuple[Blob | Skip | None, list[Finding]]:
    blob = source.read(entry)
    if not isinstance(blob, Blob):
        return blob, []
    return blob, findings_in(blob, suppression.inline_allow)


def _position(finding: Finding) -> tuple[str, int, int]:
    return finding.path, finding.line, finding.column


def scan_staged(repo: Repo, suppression: Suppression) -> ScanResult:
    """The keys a commit of the staged changes would add."""
    started = time.perf_counter()
    result = ScanResult()
    found, result.blobs, result.bytes = staged_findings(repo, suppression.inline_allow)
    result.add(sorted(found, key=_position), suppression)
    result.seconds = time.perf_counter() - started
    return result


def scan_history(
    repo: Repo,
    suppression: Suppression,
    *,
    all_objects: bool,
    max_blob_size: int,
    use_cache: bool,
    progress: bool,
) -> ScanResult:
    """Every key in every blob of the repository, once per key and path, with its timeline."""
    started = time.perf_counter()
    result = ScanResult()
    if not repo.has_commits() and not all_objects:
        result.notes.append("the repository has no commits yet: its history is empty")
        return result
    cache = CleanBlobCache(repo.git_dir, repo.id_length) if use_cache else None
    scan = scan_blobs(repo, max_blob_size=max_blob_size, cache=cache, progress=progress)
    hit_blobs = read_blobs(repo, scan.hits)
    found = history_findings(
        repo, hit_blobs, inline_allow=suppression.inline_allow, all_objects=all_objects
    )
    if cache is not None:
        cache.save()
    result.blobs, result.bytes = scan.read, scan.bytes
    result.add(sorted(found, key=_position), suppression)
    result.skipped += [
        Skip(f"object {b}", "missing or corrupt object", unreadable=True) for b in scan.missing
    ]
    result.skipped += [
        Skip(f"blob {b}", f"larger than the size limit ({size:,} bytes)")
        for b, size in scan.too_big
    ]
    if scan.cached:
        result.notes.append(f"{scan.cached:,} blobs known clean from the cache were not re-read")
    if scan.lfs_pointers:
        result.notes.append(
            f"{scan.lfs_pointers:,} Git LFS pointers: their content is not in git and was not "
            "fetched or scanned"
        )
    result.seconds = time.perf_counter() - started
    return result


def scan_commits(
    repo: Repo, suppression: Suppression, *, since: str | None, span: str | None
) -> ScanResult:
    """The keys the commits of a range introduced."""
    started = time.perf_counter()
    result = ScanResult()
    revs, note = parse_range(repo, since, span)
    scan = scan_range(repo, revs, suppression.inline_allow)
    if note:
        result.notes.append(note)
    if scan.commits == 0:
        result.notes.append("the range holds no commits: nothing to scan")
    result.blobs, result.bytes = scan.blobs, scan.bytes
    result.add(sorted(scan.findings, key=_position), suppression)
    result.seconds = time.perf_counter() - started
    return result
