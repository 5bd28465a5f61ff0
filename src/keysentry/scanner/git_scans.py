"""Git sources through the detector into a ScanResult: staged, history, commit ranges.

Each mode imports what only it needs when it runs, so the pre-commit path (`--staged`) never
loads the history machinery.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from keysentry.scanner.findings import Finding
from keysentry.scanner.pipeline import ScanResult, Suppression, position
from keysentry.scanner.sources.files import Skip

if TYPE_CHECKING:
    from keysentry.scanner.sources.git import Repo


def scan_staged(repo: Repo, suppression: Suppression) -> ScanResult:
    """The keys a commit of the staged changes would add."""
    from keysentry.scanner.sources.staged import staged_findings

    started = time.perf_counter()
    result = ScanResult()
    found, result.blobs, result.bytes = staged_findings(repo, suppression.inline_allow)
    result.add(sorted(found, key=position), suppression)
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
    from keysentry.scanner.cache import ResultCache

    started = time.perf_counter()
    result = ScanResult()
    refs = repo.refs()
    if not any(name == "HEAD" for name, _ in refs) and not all_objects:
        result.notes.append("the repository has no commits yet: its history is empty")
        return result
    # The last result holds while every ref points where it did; unreachable objects are not
    # covered by refs, so --all-objects always scans.
    key = {"refs": [list(r) for r in refs], "max_blob_size": max_blob_size,
           "shallow": repo.shallow}  # fmt: skip
    results = ResultCache(repo.git_dir) if use_cache and not all_objects else None
    cached = results.load(key) if results else None
    reused = _reuse(repo, cached, suppression) if cached else None
    if reused is not None:
        found, stats = reused
        result.notes.append(
            "history unchanged since the last scan: its result was reused, and only the "
            "blobs with keys were read again"
        )
    else:
        found, stats = _scan_all_blobs(
            repo, suppression, all_objects=all_objects, max_blob_size=max_blob_size,
            use_cache=use_cache, progress=progress,
        )  # fmt: skip
        if results is not None:
            from keysentry.scanner.provenance import timeline_records

            results.save(key, {**stats, "findings": timeline_records(found)})
    assert stats is not None
    result.blobs, result.bytes = stats["read"], stats["bytes"]
    result.add(sorted(found, key=position), suppression)
    result.skipped += [
        Skip(f"object {b}", "missing or corrupt object", unreadable=True) for b in stats["missing"]
    ]
    result.skipped += [
        Skip(f"blob {b}", f"larger than the size limit ({size:,} bytes)")
        for b, size in stats["too_big"]
    ]
    if stats.get("cached"):
        result.notes.append(
            f"{stats['cached']:,} blobs known clean from the cache were not re-read"
        )
    if stats["lfs_pointers"]:
        result.notes.append(
            f"{stats['lfs_pointers']:,} Git LFS pointers: their content is not in git and was not "
            "fetched or scanned"
        )
    result.seconds = time.perf_counter() - started
    return result


def _reuse(
    repo: Repo, cached: dict[str, Any], suppression: Suppression
) -> tuple[list[Finding], dict[str, Any]] | None:
    """The cached result's findings, keys re-read from their blobs, and what this run read;
    None if any blob or key is gone (then everything is scanned again)."""
    from keysentry.scanner.provenance import rebuild_findings
    from keysentry.scanner.sources.history import read_blobs

    hit_blobs = read_blobs(repo, cached["hits"])
    if len(hit_blobs) != len(set(cached["hits"])):
        return None
    found = rebuild_findings(repo, hit_blobs, cached["findings"], suppression.inline_allow)
    if found is None:
        return None
    read = {"read": len(hit_blobs), "bytes": sum(map(len, hit_blobs.values())), "cached": 0}
    return found, {**cached, **read}


def _scan_all_blobs(
    repo: Repo,
    suppression: Suppression,
    *,
    all_objects: bool,
    max_blob_size: int,
    use_cache: bool,
    progress: bool,
) -> tuple[list[Finding], dict[str, Any]]:
    from keysentry.scanner.cache import CleanBlobCache
    from keysentry.scanner.provenance import CommitLog, history_findings
    from keysentry.scanner.sources.history import read_blobs, scan_blobs

    cache = CleanBlobCache(repo.git_dir, repo.id_length) if use_cache else None
    log = CommitLog(repo, "--all")  # runs in the background while blobs are read
    try:
        scan = scan_blobs(repo, max_blob_size=max_blob_size, cache=cache, progress=progress)
        found = []
        if scan.hits:  # else the log is not needed: cancelled below
            found = history_findings(
                repo, log, read_blobs(repo, scan.hits), inline_allow=suppression.inline_allow,
                all_objects=all_objects,
            )  # fmt: skip
    finally:
        log.cancel()
    if cache is not None:
        cache.save()
    stats = {
        "hits": scan.hits,
        "read": scan.read,
        "bytes": scan.bytes,
        "cached": scan.cached,
        "missing": scan.missing,
        "too_big": [list(t) for t in scan.too_big],
        "lfs_pointers": scan.lfs_pointers,
    }
    return found, stats


def scan_commits(
    repo: Repo,
    suppression: Suppression,
    *,
    since: str | None,
    spans: tuple[str, ...],
    strict: bool,
) -> ScanResult:
    """The keys the commits of one or more ranges introduced, once per key and path."""
    from keysentry.scanner.sources.ranges import parse_range, scan_range

    started = time.perf_counter()
    result = ScanResult()
    if since is not None:
        spans = (f"{repo.resolve(since)}..{repo.resolve('HEAD')}",)
    found: dict[tuple[str, str], Finding] = {}
    commits = 0
    for span in spans:
        revs, note = parse_range(repo, span, strict)
        if note:
            result.notes.append(note)
        scan = scan_range(repo, revs, suppression.inline_allow)
        commits += scan.commits
        result.blobs += scan.blobs
        result.bytes += scan.bytes
        for finding in scan.findings:
            found.setdefault((finding.fingerprint, finding.path), finding)
    if commits == 0:
        result.notes.append("the range holds no commits: nothing to scan")
    result.add(sorted(found.values(), key=position), suppression)
    result.seconds = time.perf_counter() - started
    return result
