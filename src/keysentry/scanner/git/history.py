"""Every unique blob in a repository, read once, in pack order, while it is being listed.

The blob list comes from `git cat-file --batch-all-objects --unordered` (pack order is 5-7x
faster to read than history order on large repositories). Reading starts with the first blobs
listed: the listing cuts pack order into runs of about 4 MiB, and each reader (a `cat-file
--batch` in a thread) takes the next run when it is about to run dry, so no reader waits for
the whole list and the readers finish together. Blobs the
clean-blob cache already knows are not read again. Only whether a blob holds a key is decided
here; which commits and paths carry it is `provenance`'s job, for the few blobs that do.

Unreachable blobs are read too (it costs little and needs no graph walk); provenance drops
their findings unless `--all-objects` was asked.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from keysentry.scanner.findings import Blob, IncompleteBlob, findings_in
from keysentry.scanner.git.cache import CleanBlobCache
from keysentry.scanner.git.reader import IdStream, Unread, enlarge_pipe, read_all
from keysentry.scanner.git.repo import LFS_POINTER, Repo
from keysentry.scanner.git.run import GitError, finish, popen_git
from keysentry.scanner.pipeline import detect_in
from keysentry.scanner.precheck import is_archive
from keysentry.scanner.sources.files import Skip

# The listing cuts pack order into runs of about this many bytes, each read by one reader:
# reads stay local (git inflates a delta's base once per run, not once per blob), and below
# one run's worth there is one reader: a second would cost more than it saves.
_RUN_BYTES = 4 << 20
_MAX_READERS = 4
# cat-file's output pipe: 1 MiB (Linux's default maximum for a user) instead of 64 KiB, so
# each read moves up to 16 times more bytes and git waits on a full pipe far less often.
_PIPE_SIZE = 1 << 20


class BlobScan:
    """What reading and searching blobs found. A plain class: `dataclasses` would cost every
    history scan 5 ms of imports (inspect, ast, dis)."""

    def __init__(self) -> None:
        self.hits: list[str] = []  # ids of blobs that hold a key
        self.clean: list[str] = []  # read in full, searched in full, no key
        self.read = 0  # blobs read
        self.bytes = 0
        self.cached = 0  # blobs skipped because the cache knows them clean
        self.missing: list[str] = []
        self.unread = Unread()  # not read in full: never clean
        self.incomplete: list[tuple[str, str]] = []  # (blob, why) not searched
        self.too_big: list[tuple[str, int]] = []
        self.archive_skips: list[Skip] = []  # members of archive blobs
        self.lfs_pointers = 0
        self.error: BaseException | None = None  # raised by the caller: a reader thread cannot

    def merge(self, other: BlobScan) -> None:
        self.hits += other.hits
        self.clean += other.clean
        self.read += other.read
        self.bytes += other.bytes
        self.missing += other.missing
        self.unread.merge(other.unread)
        self.incomplete += other.incomplete
        self.too_big += other.too_big
        self.archive_skips += other.archive_skips
        self.lfs_pointers += other.lfs_pointers


def reachable_blobs(repo: Repo, commit: str) -> frozenset[str]:
    """The ids of every blob `commit`'s history holds (`git rev-list --objects`)."""
    listing = repo.git("rev-list", "--objects", "--no-object-names", commit, "--")
    return frozenset(listing.decode("ascii", "replace").split())


def scan_blobs(
    repo: Repo,
    *,
    max_blob_size: int,
    cache: CleanBlobCache | None,
    progress: bool,
    only: frozenset[str] | None = None,
    on_hit: Callable[[], None] = lambda: None,
) -> BlobScan:
    """Read every blob not known clean (of `only`, when given) and note which hold keys;
    `on_hit` is called (from a reader thread) when the first is found. Objects git lists but
    cannot read (corrupt) are `missing`."""
    result = BlobScan()
    readers = _Readers(repo, _Progress() if progress else None, on_hit)
    try:
        for blob_id, size in _listed_blobs(repo, result.missing):
            if only is not None and blob_id not in only:
                continue
            if cache is not None and cache.knows(blob_id):
                result.cached += 1
            elif size > max_blob_size:
                result.too_big.append((blob_id, size))
            else:
                readers.add(blob_id, size)
    finally:
        readers.close()  # every reader finishes what it was handed, even when listing failed
    result.merge(readers.scanned())
    if cache is not None:
        cache.add(result.clean)  # only what was read and searched in full
    return result


def _listed_blobs(repo: Repo, corrupt: list[str]) -> Iterator[tuple[str, int]]:
    """(id, size) of every blob in the object database, in pack order, as git lists them;
    the ids of objects git cannot read go to `corrupt`."""
    process = popen_git(
        repo.path,
        "cat-file",
        "--batch-all-objects",
        "--unordered",
        "--batch-check=%(objecttype) %(objectname) %(objectsize)",
        bufsize=_PIPE_SIZE,
    )
    assert process.stdout is not None
    try:
        enlarge_pipe(process.stdout, _PIPE_SIZE)
        # Loaded here, while git lists into a pipe large enough to hold much of the list:
        # otherwise the first reader loads it while the others wait for it and git for them.
        importlib.import_module("keysentry.scanner.detect")
        for line in process.stdout:
            fields = line.split()
            if len(fields) == 3 and fields[2].isdigit():
                if fields[0] == b"blob":
                    yield fields[1].decode(), int(fields[2])
            elif len(fields) == 2 and fields[1] == b"missing":  # listed, yet unreadable
                corrupt.append(fields[0].decode())
            else:
                raise GitError("git cat-file --batch-all-objects wrote a line it never writes")
        finish(process, "cat-file --batch-all-objects")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


class _Readers:
    """Reader threads fed while the listing goes on. The listing cuts pack order into runs of
    about `_RUN_BYTES`; a reader about to run out of ids takes the next run, so the readers
    end together whatever each run costs (deltas, object counts) and however the cores are
    shared. One is started per run handed out, up to one per core (at most four). git's
    decompression is the bulk of the work and pipe reads release the GIL, so threads
    suffice: measured, two readers took 0.44 s where one took 0.66 s, below the 0.57 s of one
    `git cat-file --batch` to /dev/null."""

    def __init__(self, repo: Repo, progress: _Progress | None, on_hit: Callable[[], None]) -> None:
        self._repo, self._progress, self._on_hit = repo, progress, on_hit
        self._most = min(os.cpu_count() or 1, _MAX_READERS)
        self._run: list[str] = []
        self._filled = 0  # bytes in the run being listed
        self._runs: deque[list[str]] = deque()  # listed, not yet taken
        self._listed = False
        self._changed = threading.Condition()
        self._parts: list[BlobScan] = []
        self._threads: list[threading.Thread] = []

    def add(self, blob_id: str, size: int) -> None:
        self._run.append(blob_id)
        self._filled += size
        if self._progress is not None:
            self._progress.expect(size)
        if self._filled >= _RUN_BYTES:
            self._hand_out()

    def _hand_out(self) -> None:
        if not self._run:
            return
        with self._changed:
            self._runs.append(self._run)
            self._changed.notify()
        self._run, self._filled = [], 0
        if len(self._threads) < self._most:
            part = BlobScan()
            stream = IdStream(more=self._take)
            thread = threading.Thread(
                target=_scan_run, args=(self._repo, stream, part, self._progress, self._on_hit)
            )
            self._parts.append(part)
            self._threads.append(thread)
            thread.start()

    def _take(self) -> list[str] | None:
        """The next run for a reader about to run dry; None once every run was taken."""
        with self._changed:
            while not self._runs and not self._listed:
                self._changed.wait()
            return self._runs.popleft() if self._runs else None

    def close(self) -> None:
        """Hand out the last run, then wait for the readers to read every run."""
        try:
            self._hand_out()
        finally:
            with self._changed:
                self._listed = True
                self._changed.notify_all()
            for thread in self._threads:
                thread.join()
            if self._progress is not None:
                self._progress.done()

    def scanned(self) -> BlobScan:
        """What every reader found; a reader's exception is raised here."""
        total = BlobScan()
        for part in self._parts:
            if part.error is not None:
                raise part.error
            total.merge(part)
        return total


def _scan_run(
    repo: Repo,
    ids: list[str] | IdStream,
    into: BlobScan,
    progress: _Progress | None,
    on_hit: Callable[[], None],
    max_size: int | None = None,
) -> None:
    """Read and search one run of blobs (over `max_size`: noted too big, not read); any
    exception is kept for the caller to raise (a thread's own would be printed raw and lost)."""
    told = False
    try:
        for blob_id, data in read_all(repo, ids, into.unread, max_size, pipe_size=_PIPE_SIZE):
            if into.hits and not told:  # the blob before this one held a key
                on_hit()
                told = True
            if isinstance(data, int):
                into.too_big.append((blob_id, data))
                continue
            if not isinstance(data, bytes):
                into.missing.append(blob_id)
                continue
            into.read += 1
            into.bytes += len(data)
            if data.startswith(LFS_POINTER):
                into.lfs_pointers += 1
            if is_archive(data):  # its members, each named as `blob <id>!member`
                skips: list[Skip] = []
                found = detect_in(Blob(f"blob {blob_id}", data), False, skips)
                into.archive_skips += skips
                if found:
                    into.hits.append(blob_id)
                elif not skips:  # a member passed over leaves the blob unproven, not clean
                    into.clean.append(blob_id)
            else:
                try:
                    found = findings_in(Blob("", data), inline_allow=False)
                except IncompleteBlob as exc:  # not clean, whatever it found
                    into.incomplete.append((blob_id, exc.reason))
                    if exc.findings:
                        into.hits.append(blob_id)
                else:
                    (into.hits if found else into.clean).append(blob_id)
            if progress is not None:
                progress.tick(len(data))
        if into.hits and not told:
            on_hit()
    except BaseException as exc:  # anything, even a bug: the caller raises it
        into.error = exc


def scan_ids(repo: Repo, ids: list[str], max_blob_size: int) -> BlobScan:
    """Read and search the blobs `ids` (the few that new commits added), in one reader."""
    scan = BlobScan()
    _scan_run(repo, ids, scan, None, lambda: None, max_blob_size)
    if scan.error is not None:
        raise scan.error
    return scan


class _Progress:
    """`objects, MB, MB/s` on stderr, a few times a second; only used on a terminal. The
    listing adds to what is to be read (it runs ahead of the readers), reader threads tick
    what was read; a lock keeps the counts whole."""

    def __init__(self) -> None:
        self._objects = self._size = 0
        self._read = self._bytes = 0
        self._lock = threading.Lock()
        self._started = self._shown = time.monotonic()

    def expect(self, size: int) -> None:
        with self._lock:
            self._objects += 1
            self._size += size

    def tick(self, size: int) -> None:
        with self._lock:
            self._read += 1
            self._bytes += size
            now = time.monotonic()
            if now - self._shown < 0.2:
                return
            self._shown = now
            rate = self._bytes / 1e6 / max(now - self._started, 1e-6)
            sys.stderr.write(
                f"\rkeysentry: {self._read:,}/{self._objects:,} objects, "
                f"{self._bytes / 1e6:,.0f}/{self._size / 1e6:,.0f} MB, {rate:,.0f} MB/s "
            )
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
