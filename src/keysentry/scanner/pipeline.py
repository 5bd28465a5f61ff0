"""Run a source through the detector and the suppressions into a ScanResult.

Source -> Blob -> findings_in -> Finding -> suppression -> ScanResult; reports only read the
result.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

from keysentry.scanner.findings import Blob, Finding, IncompleteBlob, findings_in
from keysentry.scanner.precheck import is_archive
from keysentry.scanner.sources.files import FileEntry, FileSource, Skip
from keysentry.scanner.suppress import IgnoreRules


class Suppression(NamedTuple):
    inline_allow: bool = True
    ignore: IgnoreRules = IgnoreRules()
    baseline: frozenset[str] = frozenset()


class ScanResult:
    """What a scan found, passed over and noted; reports only read it."""

    def __init__(self) -> None:
        # A plain class: `dataclasses` costs the pre-commit path 2.5 ms of imports.
        self.findings: list[Finding] = []  # what the report shows
        self.unsuppressed: list[Finding] = []  # before the baseline, for updates
        self.suppressed: Counter[str] = Counter()  # by reason
        self.skipped: list[Skip] = []
        self.blobs = 0
        self.bytes = 0
        self.seconds = 0.0
        self.notes: list[str] = []  # what the user should know about coverage

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
    scanned = [_read_and_detect(source, e, suppression, result.skipped) for e in entries]
    for blob, found in scanned:
        if isinstance(blob, Skip):
            result.skipped.append(blob)
        elif blob is not None:
            result.blobs += 1
            result.bytes += len(blob.data)
            result.add(found, suppression)
    result.findings.sort(key=position)
    result.unsuppressed.sort(key=position)
    result.skipped.sort(key=lambda s: s.path)
    result.seconds = time.perf_counter() - started
    return result


def _read_and_detect(
    source: FileSource, entry: FileEntry, suppression: Suppression, skipped: list[Skip]
) -> tuple[Blob | Skip | None, list[Finding]]:
    blob = source.read(entry)
    if not isinstance(blob, Blob):
        return blob, []
    return blob, detect_in(blob, suppression.inline_allow, skipped)


def detect_in(
    blob: Blob, inline_allow: bool, skipped: list[Skip], shown: str | None = None
) -> list[Finding]:
    """The findings in a blob; one the detector could not search in full keeps what it found
    and is named in `skipped` as unreadable (as `shown`, else its path): never clean. An
    archive's members are searched instead (sources/archives.py), and what of it could not
    be is in `skipped` too."""
    if is_archive(blob.data):  # the first bytes only: every other blob pays two slices
        return _detect_members(blob, inline_allow, skipped)
    return _detect_one(blob, inline_allow, skipped, shown)


def _detect_members(blob: Blob, inline_allow: bool, skipped: list[Skip]) -> list[Finding]:
    from keysentry.scanner.sources.archives import members

    found: list[Finding] = []
    for item in members(blob):
        if isinstance(item, Skip):
            skipped.append(item)
        else:
            found += _detect_one(item, inline_allow, skipped, None)
    return found


def scan_blobs(items: Iterable[Blob | Skip], suppression: Suppression) -> ScanResult:
    """Search blobs a source yields as they are (an image's members: archives opened there)."""
    started = time.perf_counter()
    result = ScanResult()
    for item in items:
        if isinstance(item, Skip):
            result.skipped.append(item)
            continue
        result.blobs += 1
        result.bytes += len(item.data)
        result.add(_detect_one(item, suppression.inline_allow, result.skipped, None), suppression)
    result.findings.sort(key=position)
    result.unsuppressed.sort(key=position)
    result.seconds = time.perf_counter() - started
    return result


def _detect_one(
    blob: Blob, inline_allow: bool, skipped: list[Skip], shown: str | None
) -> list[Finding]:
    try:
        return findings_in(blob, inline_allow)
    except IncompleteBlob as exc:
        reason = f"not fully scanned: {exc.reason}"
        skipped.append(Skip(shown or blob.path, reason, unreadable=True))
        return exc.findings


def position(finding: Finding) -> tuple[str, int, int]:
    return finding.path, finding.line, finding.column
