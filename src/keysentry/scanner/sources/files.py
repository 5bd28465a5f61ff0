"""Files and directories on disk, and standard input.

Inside a git work tree a directory is listed by `git ls-files`, so `.gitignore` is honoured
exactly as git does; elsewhere (or with `use_gitignore=False`) it is walked, skipping `.git/`.
Symlinks are never followed out of the root being scanned, nor into directories (no loops);
FIFOs and devices are never read. Every file passed over is reported as a Skip.

Listing does no system call per file: a file's type and size are checked when it is opened,
in the worker that reads it.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from keysentry.errors import InputError
from keysentry.scanner.findings import Blob

STDIN = "-"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_SPECIAL = "not a regular file (FIFO, socket or device)"


class Skip(NamedTuple):
    """A file not scanned, and why. `unreadable` marks errors, as opposed to choices."""

    path: str
    reason: str
    unreadable: bool = False


class FileEntry(NamedTuple):
    path: str  # as reports show it
    root: str | None  # the real path of the directory it was found in; None if named directly


class FileSource:
    def __init__(
        self,
        paths: Sequence[str],
        *,
        use_gitignore: bool = True,
        max_file_size: int,
        exclude: Sequence[str] = (),
    ) -> None:
        self._paths = list(paths) or ["."]
        self._use_gitignore = use_gitignore
        self._max_file_size = max_file_size
        self._exclude = tuple(exclude)
        for path in self._paths:
            if path != STDIN:
                _check_exists(path)

    def entries(self) -> Iterator[FileEntry | Skip]:
        """Every file to read, or the reason one is passed over; each path once."""
        seen: set[str] = set()
        overlapping = len(self._paths) > 1
        for arg in self._paths:
            if arg == STDIN:
                yield FileEntry(STDIN, None)
            elif not os.path.isdir(arg):
                yield FileEntry(arg, None)
            else:
                root = os.path.realpath(arg)
                for item in self._under(arg):
                    if overlapping and isinstance(item, FileEntry):
                        # Overlapping arguments (`scan . src`) reach one file twice.
                        real = os.path.join(root, os.path.relpath(item.path, arg))
                        if real in seen:
                            continue
                        seen.add(real)
                    yield item

    def read(self, entry: FileEntry) -> Blob | Skip | None:
        """The file's content, a Skip saying why not, or None for a symlink to a file inside
        the scanned directory (it is scanned under its own name)."""
        if entry.path == STDIN:
            return Blob("<stdin>", sys.stdin.buffer.read())
        try:
            return self._read(entry.path, entry.path)
        except OSError as exc:
            if exc.errno != errno.ELOOP:  # ELOOP: the path is a symlink (O_NOFOLLOW)
                return Skip(entry.path, f"unreadable: {exc.strerror or exc}", unreadable=True)
        return self._read_symlink(entry)

    def _read(self, shown: str, path: str) -> Blob | Skip:
        fd = os.open(path, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                if stat.S_ISDIR(st.st_mode):
                    return Skip(shown, "directory (a submodule?); not descended")
                return Skip(shown, _SPECIAL)
            if st.st_size > self._max_file_size:
                return _too_big(shown, self._max_file_size)
            data = _read_all(fd, st.st_size)
        finally:
            os.close(fd)
        if len(data) > self._max_file_size:  # grew while being read
            return _too_big(shown, self._max_file_size)
        return Blob(shown, data)

    def _read_symlink(self, entry: FileEntry) -> Blob | Skip | None:
        try:
            target = os.path.realpath(entry.path, strict=True)
            if entry.root is not None:
                if os.path.commonpath([entry.root, target]) != entry.root:
                    return Skip(entry.path, "symlink points outside the scanned directory")
                if os.path.isdir(target):
                    return Skip(entry.path, "symlink to a directory; not followed")
                return None
            # Named on the command line: the user asked for this file, wherever it is.
            return self._read(entry.path, target)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return Skip(entry.path, "symlink loop", unreadable=True)
            if exc.errno == errno.ENOENT:
                return Skip(entry.path, "dangling symlink")
            return Skip(entry.path, f"unreadable: {exc.strerror or exc}", unreadable=True)

    def _under(self, directory: str) -> Iterator[FileEntry | Skip]:
        root = os.path.realpath(directory)
        listed = self._git_listing(directory) if self._use_gitignore else None
        if listed is not None:
            for rel in listed:
                if not (self._exclude and self._excluded(rel)):
                    yield FileEntry(os.path.normpath(os.path.join(directory, rel)), root)
            return
        for item in _walk(directory):
            if isinstance(item, Skip):
                yield item
            elif not (self._exclude and self._excluded(os.path.relpath(item, directory))):
                yield FileEntry(item, root)

    def _git_listing(self, directory: str) -> list[str] | None:
        """The files git would show in `directory` (tracked, or untracked and not ignored),
        relative to it; None when it is not inside a work tree."""
        command = ["git", "-C", directory, "ls-files", "-z", "--cached", "--others",
                   "--exclude-standard", "--deduplicate"]  # fmt: skip
        try:
            listing = subprocess.run(command, capture_output=True, check=False)
        except OSError:
            return None  # no git on this machine: walk instead
        if listing.returncode != 0:
            return None
        return [os.fsdecode(p) for p in listing.stdout.split(b"\0") if p]

    def _excluded(self, rel: str) -> bool:
        rel = rel.replace(os.sep, "/")
        return any(fnmatch.fnmatchcase(rel, p) for p in self._exclude)


def _walk(directory: str) -> Iterator[str | Skip]:
    """Every file below `directory` (paths joined onto it), without `.git/`, symlinks to
    directories or special files; types come from the directory listing, not from stat."""
    pending = [directory]
    while pending:
        top = pending.pop()
        try:
            with os.scandir(top) as listing:
                items = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield Skip(top, f"unreadable directory: {exc.strerror or exc}", unreadable=True)
            continue
        subdirectories = []
        for item in items:
            path = item.path if top != "." else item.name
            if item.is_symlink() or item.is_file(follow_symlinks=False):
                yield path  # symlinks are judged when read
            elif item.is_dir(follow_symlinks=False):
                if item.name != ".git":
                    subdirectories.append(path)
            else:
                yield Skip(path, _SPECIAL)
        pending.extend(reversed(subdirectories))


def _read_all(fd: int, size: int) -> bytes:
    # One os.read of the known size: half the cost of a buffered file object per small file.
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    chunks = [data]  # the file changed size since fstat, or the read was short
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _check_exists(path: str) -> None:
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symlink loop") from None
        if os.path.lexists(path):
            raise InputError(f"{path}: {exc.strerror}") from None
        raise InputError(f"{path}: no such file or directory") from None


def _too_big(path: str, limit: int) -> Skip:
    return Skip(path, f"larger than the size limit ({limit:,} bytes; see --max-file-size)")
