"""Every unique blob in a repository, read once, in pack order.

The blob list comes from `git cat-file --batch-all-objects --unordered` (pack order is 5-7x
faster to read than history order on large repositories). Blobs the clean-blob cache already
knows are not read again. Only whether a blob holds a key is decided here; which commits and
paths carry it is `provenance`'s job, for the few blobs that do.

Unreachable blobs are read too (it costs little and needs no graph walk); provenance drops
their findings unless `--all-objects` was asked.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from keysentry.scanner.cache import CleanBlobCache
from keysentry.scanner.findings import Blob, findings_in
from keysentry.scanner.sources.git import (
    LFS_POINTER,
    BlobReader,
    Repo,
    finish,
    stream_git,
)

# Below this much to read, a second process costs more than it saves (measured: no gain on a
# 78 MB history, 1.6x on a 4 GB one).
_PARALLEL_MIN_BYTES = 256 << 20


@dataclass
class BlobScan:
    hits: list[str] = field(default_factory=list)  # ids of blobs that hold a key
    read: int = 0  # blobs read
    bytes: int = 0
    cached: int = 0  # blobs skipped because the cache knows them clean
    missing: list[str] = field(default_factory=list)
    too_big: list[tuple[str, int]] = field(default_factory=list)
    lfs_pointers: int = 0

    def merge(self, other: BlobScan) -> None:
        self.hits += other.hits
        self.read += other.read
        self.bytes += other.bytes
        self.missing += other.missing
        self.lfs_pointers += other.lfs_pointers


def list_blobs(repo: Repo) -> tuple[list[tuple[str, int]], list[str]]:
    """(id, size) of every blob in the object database, in pack order, and the ids of objects
    git cannot read (corrupt)."""
    process = stream_git(
        repo,
        "cat-file",
        "--batch-all-objects",
        "--unordered",
        "--batch-check=%(objecttype) %(objectname) %(objectsize)",
    )
    assert process.stdout is not None
    blobs, corrupt = [], []
    for line in process.stdout:
        fields = line.split()
        if fields[-1] == b"missing":  # listed, yet unreadable: a corrupt object
            corrupt.append(fields[0].decode())
        elif fields[0] == b"blob":
            blobs.append((fields[1].decode(), int(fields[2])))
    finish(process, "cat-file --batch-all-objects")
    return blobs, corrupt


def scan_blobs(
    repo: Repo, *, max_blob_size: int, cache: CleanBlobCache | None, progress: bool
) -> BlobScan:
    """Read every blob not known clean and note which hold keys."""
    blobs, corrupt = list_blobs(repo)
    result = BlobScan(missing=corrupt)
    todo: list[tuple[str, int]] = []
    for blob_id, size in blobs:
        if cache is not None and cache.knows(blob_id):
            result.cached += 1
        elif size > max_blob_size:
            result.too_big.append((blob_id, size))
        else:
            todo.append((blob_id, size))
    total = sum(size for _, size in todo)
    workers = min(os.cpu_count() or 1, 4)
    if workers > 1 and total >= _PARALLEL_MIN_BYTES and hasattr(os, "fork"):
        result.merge(_scan_in_processes(repo, todo, workers))
    else:
        report = _Progress(len(todo), total) if progress else None
        result.merge(_scan_ids(repo, [i for i, _ in todo], report))
    if cache is not None:
        hits = set(result.hits) | set(result.missing)
        cache.add(i for i, _ in todo if i not in hits)
    return result


def blob_has_key(data: bytes) -> bool:
    return bool(findings_in(Blob("", data), inline_allow=False))


def _scan_ids(repo: Repo, ids: list[str], progress: _Progress | None = None) -> BlobScan:
    result = BlobScan()
    with BlobReader(repo) as reader:
        for blob_id, data in reader.read(ids):
            if data is None:
                result.missing.append(blob_id)
                continue
            result.read += 1
            result.bytes += len(data)
            if data.startswith(LFS_POINTER):
                result.lfs_pointers += 1
            if blob_has_key(data):
                result.hits.append(blob_id)
            if progress is not None:
                progress.tick(result.read, result.bytes)
    if progress is not None:
        progress.done()
    return result


def _scan_in_processes(repo: Repo, todo: list[tuple[str, int]], workers: int) -> BlobScan:
    """Split the ids into contiguous runs of pack order (reads stay local) of about equal
    size, and scan each run in its own process with its own cat-file."""
    import multiprocessing

    total = sum(size for _, size in todo)
    chunks: list[list[str]] = [[]]
    filled = 0
    share = total / (workers * 4) + 1
    for blob_id, size in todo:
        if filled >= share:
            chunks.append([])
            filled = 0
        chunks[-1].append(blob_id)
        filled += size
    result = BlobScan()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for part in pool.imap_unordered(_scan_chunk, [(repo, c) for c in chunks]):
            result.merge(part)
    return result


def _scan_chunk(job: tuple[Repo, list[str]]) -> BlobScan:
    return _scan_ids(*job)


class _Progress:
    """`objects, MB, MB/s` on stderr, a few times a second; only used on a terminal."""

    def __init__(self, objects: int, size: int) -> None:
        self._objects, self._size = objects, size
        self._started = self._shown = time.monotonic()

    def tick(self, read: int, size: int) -> None:
        now = time.monotonic()
        if now - self._shown < 0.2:
            return
        self._shown = now
        rate = size / 1e6 / max(now - self._started, 1e-6)
        sys.stderr.write(
            f"\rkeysentry: {read:,}/{self._objects:,} objects, "
            f"{size / 1e6:,.0f}/{self._size / 1e6:,.0f} MB, {rate:,.0f} MB/s "
        )
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def read_blobs(repo: Repo, ids: Iterable[str]) -> dict[str, bytes]:
    """The contents of a few blobs (the hits), by id."""
    with BlobReader(repo) as reader:
        return {i: data for i, data in reader.read(sorted(set(ids))) if data is not None}
