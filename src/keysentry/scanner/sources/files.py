"""Files and directories on disk, and standard input.

Inside a git work tree a directory is listed by `git ls-files`, so `.gitignore` is honoured
exactly as git does; elsewhere (or with `use_gitignore=False`) it is walked, skipping `.git/`.
Symlinks are never followed out of the root being scanned, nor into directories (no loops);
FIFOs and devices are never opened. Every file passed over is reported as a Skip.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from keysentry.errors import InputError
from keysentry.scanner.findings import Blob

STDIN = "-"


@dataclass(frozen=True)
class Skip:
    """A file not scanned, and why. `unreadable` marks errors, as opposed to choices."""

    path: str
    reason: str
    unreadable: bool = False


@dataclass(frozen=True)
class FileEntry:
    path: str  # as reports show it
    real: str  # where it is read from
    size: int
    identity: tuple[int, int] = (0, 0)  # (device, inode): the same file reached twice is read once


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
        """Every file to read, or the reason it is passed over; each real file once."""
        seen: set[tuple[int, int]] = set()
        for arg in self._paths:
            if arg == STDIN:
                yield FileEntry("<stdin>", STDIN, 0)
                continue
            for item in self._entries_under(arg):
                if isinstance(item, FileEntry):
                    if item.identity in seen:
                        continue
                    seen.add(item.identity)
                yield item

    def read(self, entry: FileEntry) -> Blob | Skip:
        if entry.real == STDIN:
            return Blob(entry.path, sys.stdin.buffer.read())
        try:
            with open(entry.real, "rb") as handle:
                data = handle.read(self._max_file_size + 1)
        except OSError as exc:
            return Skip(entry.path, f"unreadable: {exc.strerror or exc}", unreadable=True)
        if len(data) > self._max_file_size:  # grew since it was listed
            return _too_big(entry.path, self._max_file_size)
        return Blob(entry.path, data)

    def _entries_under(self, arg: str) -> Iterator[FileEntry | Skip]:
        if not os.path.isdir(arg):
            # A file named on the command line is scanned even when ignored; a symlink to it is
            # followed because the user named it.
            yield self._entry(arg, os.path.realpath(arg), root=None)
            return
        root = os.path.realpath(arg)
        listed = self._git_listing(arg) if self._use_gitignore else None
        names = listed if listed is not None else _walk(arg)
        for rel in names:
            if isinstance(rel, Skip):
                yield rel
                continue
            if self._excluded(rel):
                continue
            shown = os.path.normpath(os.path.join(arg, rel))
            yield self._entry(shown, shown, root)

    def _entry(self, shown: str, path: str, root: str | None) -> FileEntry | Skip:
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(path, strict=True)
                if root is not None and os.path.commonpath([root, target]) != root:
                    return Skip(shown, "symlink points outside the scanned directory")
                st = os.stat(target)
                path = target
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return Skip(shown, "symlink loop", unreadable=True)
            if exc.errno == errno.ENOENT and root is not None:
                return Skip(shown, "dangling symlink or deleted file")
            return Skip(shown, f"unreadable: {exc.strerror or exc}", unreadable=True)
        if stat.S_ISDIR(st.st_mode):
            return Skip(shown, "directory behind a symlink or submodule; not descended")
        if not stat.S_ISREG(st.st_mode):
            return Skip(shown, "not a regular file (FIFO, socket or device)")
        if st.st_size > self._max_file_size:
            return _too_big(shown, self._max_file_size)
        return FileEntry(shown, path, st.st_size, (st.st_dev, st.st_ino))

    def _git_listing(self, directory: str) -> list[str] | None:
        """The files git would show in `directory` (tracked, or untracked and not ignored),
        relative to it; None when it is not inside a work tree."""
        try:
            listing = subprocess.run(
                [
                    "git",
                    "-C",
                    directory,
                    "ls-files",
                    "-z",
                    "--cached",
                    "--others",
                    "--exclude-standard",
                    "--deduplicate",
                ],
                capture_output=True,
                check=False,
            )
        except OSError:
            return None  # no git on this machine: walk instead
        if listing.returncode != 0:
            return None
        return [os.fsdecode(p) for p in listing.stdout.split(b"\0") if p]

    def _excluded(self, rel: str) -> bool:
        rel = rel.replace(os.sep, "/")
        return any(fnmatch.fnmatchcase(rel, p) for p in self._exclude)


def _walk(directory: str) -> Iterator[str | Skip]:
    errors: list[OSError] = []
    for top, dirs, files in os.walk(directory, onerror=errors.append):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        # Directory symlinks appear in `dirs` but os.walk does not descend them.
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            yield os.path.relpath(os.path.join(top, name), directory)
        while errors:
            error = errors.pop()
            where = str(error.filename or top)
            yield Skip(where, f"unreadable directory: {error.strerror}", unreadable=True)


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
