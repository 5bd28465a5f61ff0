"""Git sources through the detector into a ScanResult: staged, history, commit ranges.

The sources (`staged`, `history`, `ranges`) find and read blobs; here they are searched and
what could not be read or searched becomes an unreadable Skip (the scan is then incomplete:
exit 2). Each mode imports what only it needs when it runs, so the pre-commit path
(`--staged`) never loads the history machinery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keysentry.scanner.findings import Blob, Finding
from keysentry.scanner.pipeline import ScanResult, Suppression, detect_in, position
from keysentry.scanner.sources.archives import rerooted
from keysentry.scanner.sources.files import Skip

if TYPE_CHECKING:
    from keysentry.scanner.git.history import BlobScan
    from keysentry.scanner.git.ranges import Introduced
    from keysentry.scanner.git.reader import Unread
    from keysentry.scanner.git.repo import Repo
    from keysentry.scanner.git.staged import StagedChange


def scan_staged(repo: Repo, suppression: Suppression, *, max_blob_size: int) -> ScanResult:
    """The keys a commit of the staged changes would add."""
    from keysentry.scanner.git.reader import Unread
    from keysentry.scanner.git.staged import staged_blobs, staged_changes

    started = time.perf_counter()
    result = ScanResult()
    changes = staged_changes(repo)
    unread = Unread()
    hits: list[tuple[StagedChange, list[Finding]]] = []
    for change, data in staged_blobs(repo, changes, max_blob_size, unread):
        if isinstance(data, int):
            result.skipped.append(Skip(change.shown, _too_big(data, max_blob_size)))
            continue
        result.blobs += 1
        result.bytes += len(data)
        blob = Blob(change.path, data)
        found = detect_in(blob, suppression.inline_allow, result.skipped, change.shown)
        if found:
            hits.append((change, found))
    shown = {c.new_id: c.shown for c in changes}
    result.skipped += unread_skips(unread, lambda b: shown.get(b, f"blob {b}"))
    result.add(sorted(_new_in_commit(repo, hits, max_blob_size), key=position), suppression)
    result.seconds = time.perf_counter() - started
    return result


def _new_in_commit(
    repo: Repo, hits: list[tuple[StagedChange, list[Finding]]], max_blob_size: int
) -> list[Finding]:
    """The findings whose key is not already in the HEAD blob the change replaces."""
    from keysentry.scanner.git.staged import head_blobs

    old_ids = [c.old_id for c, _ in hits if c.old_id is not None]
    before = head_blobs(repo, old_ids, max_blob_size) if old_ids else {}
    new: list[Finding] = []
    for change, found in hits:
        old = before.get(change.old_id) if change.old_id else None
        known: set[str] = set()
        if old is not None:  # its own skips do not matter: an unsearched HEAD blob hides nothing
            known = {f.fingerprint for f in detect_in(Blob(change.path, old), True, [])}
        new += [f for f in found if f.fingerprint not in known]
    return new


def scan_history(
    repo: Repo,
    suppression: Suppression,
    *,
    all_objects: bool,
    max_blob_size: int,
    use_cache: bool,
    progress: bool,
    branch: str | None = None,
) -> ScanResult:
    """Every key in every blob of the repository, once per key and path, with its timeline;
    with `branch`, only in the blobs that `branch` reaches (`git rev-list --objects`)."""
    from keysentry.scanner.git.cache import ResultCache
    from keysentry.scanner.git.repo import substitution_notes

    started = time.perf_counter()
    result = ScanResult()
    refs = repo.refs()
    result.notes += substitution_notes(repo, refs)
    if branch is not None:
        branch = repo.resolve(branch)  # a GitError naming it when it is not a commit
    elif not any(name == "HEAD" for name, _ in refs) and not all_objects:
        result.notes.append("the repository has no commits yet: its history is empty")
        return result
    # The last result holds while every ref points where it did; unreachable objects are not
    # covered by refs, so --all-objects always scans.
    key = {
        "refs": [list(r) for r in refs],
        "max_blob_size": max_blob_size,
        "shallow": repo.shallow,
        "branch": branch,
        **_archive_limits(),
    }
    results = ResultCache(repo.git_dir) if use_cache and not all_objects else None
    cached = results.load(key) if results else None
    reused = _reuse(repo, cached, suppression) if cached else None
    extended = None
    if reused is None and results is not None and branch is None:
        previous = results.load_previous(key)
        extended = _extend(repo, previous, refs, suppression, max_blob_size) if previous else None
    if reused is not None:
        found, stats = reused
        result.notes.append(
            "history unchanged since the last scan: its result was reused, and only the "
            "blobs with keys were read again"
        )
    elif extended is not None:
        found, stats, skipped = extended
        result.skipped += skipped
        result.notes.append(
            "history grew since the last scan: only the commits added were read, and the "
            "blobs with keys again"
        )
        if results is not None and not any(s.unreadable for s in skipped):
            from keysentry.scanner.git.provenance import timeline_records

            results.save(key, {**stats, "findings": timeline_records(found)})
    else:
        found, stats, skipped = _scan_all_blobs(
            repo,
            refs,
            suppression,
            all_objects=all_objects,
            max_blob_size=max_blob_size,
            use_cache=use_cache,
            progress=progress,
            branch=branch,
        )
        result.skipped += skipped
        if results is not None and not any(s.unreadable for s in skipped):
            # An incomplete result is never reused: the next run tries to read it all again.
            from keysentry.scanner.git.provenance import timeline_records

            results.save(key, {**stats, "findings": timeline_records(found)})
    result.blobs, result.bytes = stats["read"], stats["bytes"]
    result.add(sorted(found, key=position), suppression)
    result.skipped += [
        Skip(f"blob {b}", _too_big(size, max_blob_size)) for b, size in stats["too_big"]
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


def _archive_limits() -> dict[str, list[int]]:
    """How far archives were opened, in a result's key when not the defaults: a clean result
    made with deeper limits does not pass a scan with the defaults, which would stop short and
    say so. (Left out when default, so that the commit hooks' shortcut, which never loads the
    archive code, builds the same key.)"""
    from keysentry.scanner.sources.archives import Limits, current

    limits = current()
    return {} if limits == Limits() else {"archive_limits": list(limits)}


def _reuse(
    repo: Repo, cached: dict[str, Any], suppression: Suppression
) -> tuple[list[Finding], dict[str, Any]] | None:
    """The cached result's findings, keys re-read from their blobs, and what this run read;
    None if any blob or key is gone or unreadable (then everything is scanned again)."""
    read = {"read": 0, "bytes": 0, "cached": 0}
    if not cached["hits"] and not cached["findings"]:
        return [], {**cached, **read}  # a clean history: nothing to re-read or search
    from keysentry.scanner.git.provenance import rebuild_findings
    from keysentry.scanner.git.reader import Unread, read_blobs

    unread = Unread()
    hit_blobs = read_blobs(repo, cached["hits"], unread)
    if unread or len(hit_blobs) != len(set(cached["hits"])):
        return None
    found = rebuild_findings(repo, hit_blobs, cached["findings"], suppression.inline_allow)
    if found is None:
        return None
    read = {"read": len(hit_blobs), "bytes": sum(map(len, hit_blobs.values())), "cached": 0}
    return found, {**cached, **read}


def _extend(
    repo: Repo,
    previous: tuple[dict[str, Any], dict[str, Any]],
    refs: list[tuple[str, str]],
    suppression: Suppression,
    max_blob_size: int,
) -> tuple[list[Finding], dict[str, Any], list[Skip]] | None:
    """The last result carried over to a history that only grew: the blobs the added
    commits bring (`git log --raw NEW --not OLD`) read and searched, the hit blobs re-read,
    and the exposure replay continued from where the last scan left it. None whenever that
    cannot be exact (a commit of the last scan no longer reachable, a blob unreadable, a ref
    at a commit the replay never saw): then everything is scanned again."""
    from keysentry.scanner.git.history import scan_ids
    from keysentry.scanner.git.listing import GITLINK
    from keysentry.scanner.git.provenance import CommitLog, extend_findings
    from keysentry.scanner.git.reader import read_blobs
    from keysentry.scanner.git.run import GitError

    old_key, old = previous
    checkpoint = old.get("replay")
    old_tips = sorted({target for _, target in old_key["refs"]})
    new_tips = sorted({target for _, target in refs})
    if not isinstance(checkpoint, dict) or not old_tips or not new_tips:
        return None
    try:
        if repo.git("rev-list", "--max-count=1", *old_tips, "--not", *new_tips, "--").strip():
            return None  # history lost commits: counts and exposures may shrink
        added = list(CommitLog(repo, *new_tips, "--not", *old_tips).commits())
    except GitError:
        return None  # an old tip is gone from the object database, or not a commit
    old_hits = set(old["hits"])
    new_ids = {
        change.new_id
        for _, changes in added
        for change in changes
        if change.new_mode != GITLINK and set(change.new_id) != {"0"}
    }
    scan = scan_ids(repo, sorted(new_ids - old_hits), max_blob_size)
    if scan.unread or scan.missing or scan.incomplete:
        return None  # the full scan names each
    hits = sorted(old_hits | set(scan.hits))
    hit_blobs = read_blobs(repo, hits, scan.unread)
    if scan.unread or len(hit_blobs) != len(hits):
        return None
    extended = extend_findings(repo, checkpoint, added, hit_blobs, refs, suppression.inline_allow)
    if extended is None:
        return None
    found, replay = extended
    stats = {
        "hits": hits,
        "read": scan.read + len(old_hits),  # the new blobs, and the old hits re-read
        "bytes": scan.bytes + sum(len(hit_blobs[b]) for b in old_hits),
        "cached": 0,
        "too_big": old["too_big"] + [list(t) for t in scan.too_big],
        "lfs_pointers": old["lfs_pointers"] + scan.lfs_pointers,
        "replay": replay,
    }
    return found, stats, scan.archive_skips


def _scan_all_blobs(
    repo: Repo,
    refs: list[tuple[str, str]],
    suppression: Suppression,
    *,
    all_objects: bool,
    max_blob_size: int,
    use_cache: bool,
    progress: bool,
    branch: str | None = None,
) -> tuple[list[Finding], dict[str, Any], list[Skip]]:
    from keysentry.scanner.git.cache import CleanBlobCache
    from keysentry.scanner.git.history import reachable_blobs, scan_blobs
    from keysentry.scanner.git.provenance import LazyCommitLog, history_findings
    from keysentry.scanner.git.reader import read_blobs

    cache = CleanBlobCache(repo.git_dir, repo.id_length) if use_cache else None
    only = reachable_blobs(repo, branch) if branch is not None else None
    # `git log` starts at the first key found and runs while the rest is read; no key, no log.
    log = LazyCommitLog(repo, branch or "--all")
    try:
        scan = scan_blobs(
            repo,
            max_blob_size=max_blob_size,
            cache=cache,
            progress=progress,
            only=only,
            on_hit=log.start,
        )
        found = []
        # With no key anywhere, every commit's replay state is empty: a later scan of added
        # commits starts from that.
        tips = sorted({target for _, target in refs})
        replay: dict[str, Any] = {
            "state": {t: {} for t in tips},
            "ever": {t: [] for t in tips},
            "exposures": [],
            "carried_by": {},
            "paths_of": {},
        }
        if scan.hits:
            hit_blobs = read_blobs(repo, scan.hits, scan.unread)
            found = history_findings(
                repo,
                log.started(),
                hit_blobs,
                inline_allow=suppression.inline_allow,
                all_objects=all_objects,
                checkpoint=replay,
            )
    finally:
        log.cancel()
    if cache is not None:
        cache.save()
    stats = {
        "hits": scan.hits,
        "read": scan.read,
        "bytes": scan.bytes,
        "cached": scan.cached,
        "too_big": [list(t) for t in scan.too_big],
        "lfs_pointers": scan.lfs_pointers,
        "replay": replay,
    }
    return found, stats, _history_skips(scan) + scan.archive_skips


def _history_skips(scan: BlobScan) -> list[Skip]:
    skipped = [
        Skip(f"object {b}", "missing or corrupt object", unreadable=True) for b in scan.missing
    ]
    skipped += [
        Skip(f"blob {b}", f"not fully scanned: {why}", unreadable=True)
        for b, why in scan.incomplete
    ]
    return skipped + unread_skips(scan.unread, lambda b: f"blob {b}")


def unread_skips(unread: Unread, name: Callable[[str], str]) -> list[Skip]:
    """An unreadable Skip for each object that could not be read, as `name` shows it."""
    from keysentry.scanner.git.reader import PROCESS

    skipped = [
        Skip(name(i) if i != PROCESS else "git cat-file --batch", f"not read: {why}", True)
        for i, why in unread.named
    ]
    if unread.more:
        skipped.append(Skip(f"{unread.more:,} more blobs", f"not read: {unread.more_reason}", True))
    return skipped


def scan_commits(
    repo: Repo,
    suppression: Suppression,
    *,
    since: str | None,
    spans: tuple[str, ...],
    strict: bool,
    max_blob_size: int,
) -> ScanResult:
    """The keys the commits of one or more ranges introduced, once per key and path."""
    from keysentry.scanner.git.ranges import introduced_blobs, parse_range, range_blobs
    from keysentry.scanner.git.reader import Unread
    from keysentry.scanner.git.repo import substitution_notes

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
        introduced, count = introduced_blobs(repo, revs)
        commits += count

        def shown(blob_id: str, introduced: dict[str, Introduced] = introduced) -> str:
            origin = introduced.get(blob_id)
            if origin is None:
                return f"blob {blob_id}"
            return f"{min(origin.paths)} in commit {origin.commit.id[:12]} (blob {blob_id})"

        unread = Unread()
        for blob_id, data in range_blobs(repo, introduced, max_blob_size, unread):
            if isinstance(data, int):
                result.skipped.append(Skip(shown(blob_id), _too_big(data, max_blob_size)))
                continue
            result.blobs += 1
            result.bytes += len(data)
            blob = Blob(blob_id, data)
            in_blob = detect_in(blob, suppression.inline_allow, result.skipped, shown(blob_id))
            commit, paths = introduced[blob_id]
            for path in sorted(paths):
                for finding in in_blob:
                    timeline = {
                        "blob": blob_id,
                        "introduced": {**commit.describe(), "path": path, "line": finding.line},
                    }
                    provenance = {**finding.provenance, "git": timeline}
                    found.setdefault(
                        (finding.fingerprint, path),
                        finding._replace(path=rerooted(finding, path), provenance=provenance),
                    )
        result.skipped += unread_skips(unread, shown)
    if commits == 0:
        result.notes.append("the range holds no commits: nothing to scan")
    result.notes += substitution_notes(repo, repo.refs())
    result.add(sorted(found.values(), key=position), suppression)
    result.seconds = time.perf_counter() - started
    return result


def _too_big(size: int, limit: int) -> str:
    return f"{size:,} bytes, larger than the size limit ({limit:,} bytes; see --max-file-size)"


def history_keys(path: str = ".", *, all_objects: bool = False) -> list[Finding] | None:
    """Every key ever committed to the repository at `path` (inline allow markers ignored),
    for the checks that ask whether a key is in history (verify, rotate --due, baseline
    import); None outside a repository. A history that could not be read in full is an
    InputError naming what was not read: a key may sit in it, so no check may pass on it."""
    from keysentry.errors import InputError
    from keysentry.scanner.git.repo import open_repo
    from keysentry.scanner.git.run import GitError

    try:
        repo = open_repo(path)
    except GitError:
        return None
    result = scan_history(
        repo,
        Suppression(inline_allow=False),
        all_objects=all_objects,
        max_blob_size=100 << 20,
        use_cache=True,
        progress=False,
    )
    unread = [skip.path for skip in result.skipped if skip.unreadable]
    if unread:
        raise InputError(
            f"the history of {path} could not be read in full ({len(unread)} not read, "
            f"first {unread[0]}): run `keysentry scan --history` to see what"
        )
    return result.unsuppressed


def history_fingerprints(path: str = ".") -> set[str] | None:
    """The fingerprints of `history_keys`."""
    found = history_keys(path)
    return None if found is None else {f.fingerprint for f in found}
