"""Reading blobs through `git cat-file --batch`, where every byte is accounted for.

A blob that was not read in full must never count as clean: a short read, a dead or killed
`git`, a header that does not answer the id asked, a missing trailing newline or a non-zero
exit status all raise `ReaderDied` naming the ids not answered. `read_all` then starts a new
reader for the rest, so one bad object (a corrupt pack) or one killed process costs only what
could not be read, and hands back the ids it gave up on, with the reason, for the caller to
report as unreadable (an incomplete scan exits 2).

The ids are a list, or an `IdStream` that is still being filled (a history scan reads blobs
while git is still listing them): a reader then waits for the next id, and ends only once the
stream is closed and every id in it was answered.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO

from keysentry.scanner.git.repo import Repo
from keysentry.scanner.git.run import GitError, popen_git

# An answer: the content; the blob's size when it is over the size limit (not read into
# memory); None when the object is missing or is not a blob (a gitlink, a corrupt entry).
Answer = bytes | int | None
# Why a blob a commit holds, or would hold, was answered as missing: it is no clean verdict.
MISSING = "not in the object database (a partial clone's, never fetched?)"

# Readers in a row that die before answering anything: then the rest is given up as unread
# (a `git` that cannot start, or dies at once, would otherwise be restarted once per id).
_MAX_FRUITLESS = 6
_DRAIN_CHUNK = 1 << 20
_NAMED_UNREAD = 20  # ids named one by one; more are summed up in one line
PROCESS = ""  # in Unread, what failed after every id was answered: the process itself


class ReaderDied(GitError):
    """A cat-file process stopped answering: the ids from `unread` on were not read."""

    def __init__(self, reason: str, unread: int) -> None:
        super().__init__(reason)
        self.reason, self.unread = reason, unread


class IdStream:
    """Object ids handed to a reader while they are still being found: appended in order, then
    closed. Readers wait for ids that are not there yet; `available` answers once they are,
    or once the stream is closed (then nothing more will come). With `more`, a stream that
    runs dry asks it for its next ids (None: there are no more), so that whichever reader is
    about to run out takes the next share of the work."""

    def __init__(
        self,
        ids: Iterable[str] = (),
        *,
        closed: bool = False,
        more: Callable[[], list[str] | None] | None = None,
    ) -> None:
        self._ids = list(ids)
        self._closed = closed
        self._more = more
        self._asking = False  # a thread is in `more`, without the lock
        self._changed = threading.Condition()

    def wake(self) -> None:
        """Let every waiter look again at what it waits for (a feeder told to stop)."""
        with self._changed:
            self._changed.notify_all()

    def available(self, index: int, stop: Callable[[], bool] = lambda: False) -> int:
        """How many ids the stream holds, once it holds more than `index`, is closed, or
        `stop()` says to wait no more."""
        with self._changed:
            while index >= len(self._ids) and not self._closed and not stop():
                self._wait_or_ask()
            return len(self._ids)

    def __getitem__(self, index: int) -> str:
        return self._ids[index]

    def between(self, start: int, end: int) -> list[str]:
        return self._ids[start:end]

    def rest(self, start: int) -> list[str]:
        """Every id from `start` on, once the stream is closed (asking `more` for all)."""
        with self._changed:
            while not self._closed:
                self._wait_or_ask()
            return self._ids[start:]

    def _wait_or_ask(self) -> None:
        """With the lock held: ask `more` (without the lock, which it may wait for) unless
        another thread already is, else wait for a change."""
        if self._more is None or self._asking:
            self._changed.wait()
            return
        self._asking = True
        self._changed.release()
        try:
            ids = self._more()
        finally:
            self._changed.acquire()
            self._asking = False
            self._changed.notify_all()
        if ids is None:
            self._closed = True
        else:
            self._ids += ids


def cat_file(
    repo: Repo,
    ids: Sequence[str] | IdStream,
    start: int = 0,
    max_size: int | None = None,
    pipe_size: int | None = None,
) -> Iterator[tuple[str, Answer]]:
    """Answer ids[start:] in order through one `git cat-file --batch` (with a stream, until
    it is closed); ReaderDied (with the index of the first id not answered) if it fails in
    any way. `pipe_size`: enlarge its output pipe (and the read buffer) to that, for reads of
    many megabytes."""
    stream = ids if isinstance(ids, IdStream) else IdStream(ids, closed=True)
    try:
        process = popen_git(
            repo.path,
            "cat-file",
            "--batch",
            stdin=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=pipe_size or 1 << 16,
        )
    except GitError as exc:
        raise ReaderDied(str(exc), start) from None
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None
    if pipe_size:
        enlarge_pipe(stdout, pipe_size)
    feeder = _Feeder(stdin, stream, start)
    index = start
    try:
        while index < stream.available(index):
            object_id = stream[index]
            yield object_id, _answer(object_id, stdout, max_size)
            index += 1
        if stdout.read(1):
            raise _Broken("git cat-file wrote more than it was asked for")
        feeder.join()
        if process.wait() != 0:
            raise _Broken(f"git cat-file exited with status {process.returncode}")
    except _Broken as exc:
        reason = feeder.error or str(exc)
        raise ReaderDied(reason, index) from None
    finally:
        feeder.stop()
        _stop(process)
        feeder.join()


def enlarge_pipe(pipe: IO[bytes], size: int) -> None:
    """Ask Linux for a larger pipe; elsewhere, or over the system's limit, keep it as it is
    (only speed depends on it)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), setsize, size)


class _Broken(Exception):
    """The answer stream is not what cat-file --batch writes: stop reading it."""


def _answer(object_id: str, stdout: IO[bytes], max_size: int | None) -> Answer:
    header = stdout.readline()
    if not header.endswith(b"\n"):
        raise _Broken("git cat-file stopped before answering (killed, or out of resources)")
    fields = header.split()
    asked = object_id.encode()
    if len(fields) == 2 and fields[1] == b"missing" and fields[0] == asked:
        return None
    if len(fields) != 3 or fields[0] != asked or not fields[2].isdigit():
        raise _Broken("git cat-file answered with an unexpected header")
    size = int(fields[2])
    if fields[1] != b"blob" or (max_size is not None and size > max_size):
        _drain(stdout, size)
        return size if fields[1] == b"blob" else None
    data = stdout.read(size)
    if len(data) != size or stdout.read(1) != b"\n":
        raise _Broken("git cat-file stopped in the middle of it (a corrupt object, or killed)")
    return data


def _drain(stdout: IO[bytes], size: int) -> None:
    """Read past content that is not kept, in bounded chunks, checking it is all there."""
    left = size
    while left:
        chunk = stdout.read(min(left, _DRAIN_CHUNK))
        if not chunk:
            break
        left -= len(chunk)
    if left or stdout.read(1) != b"\n":
        raise _Broken("git cat-file stopped in the middle of it (a corrupt object, or killed)")


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Kill before closing its input: a feeder blocked writing to a full pipe holds the
    # writer's lock until the write fails.
    if process.poll() is None:
        process.kill()
    process.wait()
    if process.stdin is not None and not process.stdin.closed:
        with contextlib.suppress(OSError, ValueError):
            process.stdin.close()
    if process.stdout is not None:
        process.stdout.close()


class _Feeder:
    """Writes the ids to cat-file from a thread, so that reading never waits on writing (nor
    on ids still to come), then closes its input so that it exits. What stops it is kept for
    the reader to report."""

    def __init__(self, stdin: IO[bytes], ids: IdStream, start: int) -> None:
        self.error: str | None = None
        self._stdin, self._ids, self._start = stdin, ids, start
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            sent = self._start
            while not self._stopped and sent < (held := self._ids.available(sent, self._told)):
                batch = self._ids.between(sent, min(held, sent + 4096))
                self._stdin.write("".join(f"{i}\n" for i in batch).encode())
                self._stdin.flush()
                sent += len(batch)
            self._stdin.close()
        except BrokenPipeError:
            pass  # cat-file died: the reader sees it stop and says so
        except BaseException as exc:  # anything: handed to the reader, which reports it
            self.error = f"could not send object ids to git cat-file: {exc}"

    def _told(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Wait for no more ids: the reader is done with this process."""
        self._stopped = True
        self._ids.wake()

    def join(self) -> None:
        self._thread.join()


class Unread:
    """What `read_all` could not read: (object id, reason), and a count past the named ones."""

    def __init__(self) -> None:
        self.named: list[tuple[str, str]] = []
        self.more = 0
        self.more_reason = ""

    def __bool__(self) -> bool:
        return bool(self.named or self.more)

    def add(self, object_id: str, reason: str) -> None:
        if len(self.named) < _NAMED_UNREAD:
            self.named.append((object_id, reason))
        else:
            self.more += 1
            self.more_reason = reason

    def merge(self, other: Unread) -> None:
        for object_id, reason in other.named:
            self.add(object_id, reason)
        self.more += other.more
        self.more_reason = other.more_reason or self.more_reason


def read_all(
    repo: Repo,
    ids: Sequence[str] | IdStream,
    unread: Unread,
    max_size: int | None = None,
    pipe_size: int | None = None,
) -> Iterator[tuple[str, Answer]]:
    """Answer every id it can, in order, restarting a reader that dies; what could not be read
    goes to `unread` and is not yielded. A stream is read until it is closed.

    An id a reader died on is tried once more in a fresh reader (a killed process, a passing
    fault); if that dies on it too, it is unreadable (a corrupt object) and reading goes on
    after it. Readers that keep dying before answering anything stop the retries."""
    stream = ids if isinstance(ids, IdStream) else IdStream(ids, closed=True)
    start, fruitless = 0, 0
    failed_once: set[str] = set()
    while start < stream.available(start):
        answered = 0
        try:
            for answer in cat_file(repo, stream, start, max_size, pipe_size):
                start += 1
                answered += 1
                yield answer
            return
        except ReaderDied as exc:
            start = exc.unread
            if start >= stream.available(start):  # everything was answered, then git failed
                unread.add(PROCESS, exc.reason)
                return
            fruitless = 0 if answered else fruitless + 1
            culprit = stream[start]
            if culprit in failed_once:
                unread.add(culprit, exc.reason)
                start += 1
            failed_once.add(culprit)
            if fruitless >= _MAX_FRUITLESS:
                for object_id in stream.rest(start):
                    unread.add(object_id, f"not read: {exc.reason}")
                return


def read_blobs(repo: Repo, ids: Iterable[str], unread: Unread) -> dict[str, bytes]:
    """The contents of a few blobs (the hits), by id; what cannot be read goes to `unread`."""
    wanted = sorted(set(ids))
    return {i: d for i, d in read_all(repo, wanted, unread) if isinstance(d, bytes)}
