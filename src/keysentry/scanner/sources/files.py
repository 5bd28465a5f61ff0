"""Files and directories on disk, and standard input.

Inside a git work tree a directory is listed by `git ls-files`, so `.gitignore` is honoured
exactly as git does; elsewhere (or with `use_gitignore=False`) it is walked, skipping `.git/`.
Symlinks are never followed out of the root being scanned, nor into directories (no loops);
FIFOs and devices are never read. Every file passed over is reported as a Skip, and one that
could not be read (an unreadable directory too) as an unreadable one: the scan is incomplete.

The walk opens each directory relative to an open ancestor, and a file whose path is longer
than the system takes is opened one directory at a time, so no depth is too deep to scan.

Listing does no system call per file: a file's type and size are checked when it is opened,
in the worker that reads it.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from keysentry.errors import InputError
from keysentry.scanner.findings import Blob
from keysentry.scanner.precheck import OPEN_FLAGS, ancestors, read_whole

STDIN = "-"
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
# Below the root, a directory listed as one is opened without following a symlink (no swap).
_SUBDIRECTORY = _DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
# A walk opens a new anchor once a path relative to the last one is this long: well below
# PATH_MAX (4096 on Linux, 1024 on macOS), so that one name more never reaches it.
_ANCHOR_AFTER = 512
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
        self.excluded: list[str] = []  # paths passed over by an exclude pattern (--verbose)
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
            return self._read(entry.path, os.open(entry.path, OPEN_FLAGS))
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return self._read_deep(entry.path)
            if exc.errno != errno.ELOOP:  # ELOOP: the path is a symlink (O_NOFOLLOW)
                return Skip(entry.path, f"unreadable: {exc.strerror or exc}", unreadable=True)
        return self._read_symlink(entry)

    def _read_deep(self, path: str) -> Blob | Skip:
        """A file whose path is too long to open in one call."""
        try:
            return self._read(path, _open_deep(path))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                reason = "symlink in a path too long to resolve; not followed"
            else:
                reason = f"unreadable: {exc.strerror or exc}"
            return Skip(path, reason, unreadable=True)

    def _read(self, shown: str, fd: int) -> Blob | Skip:
        """The file open on `fd` (closed here), unless it is special or too big."""
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                if stat.S_ISDIR(st.st_mode):
                    return Skip(shown, "directory (a submodule?); not descended")
                return Skip(shown, _SPECIAL)
            if st.st_size > self._max_file_size:
                return _too_big(shown, self._max_file_size)
            data = read_whole(fd, st.st_size)
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
            return self._read(entry.path, os.open(target, OPEN_FLAGS))
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
                path = os.path.normpath(os.path.join(directory, rel))
                if self._exclude and self._excluded(rel):
                    self.excluded.append(path)
                else:
                    yield FileEntry(path, root)
            return
        for item in _walk(directory):
            if isinstance(item, Skip):
                yield item
            elif self._exclude and self._excluded(os.path.relpath(item, directory)):
                self.excluded.append(item)
            else:
                yield FileEntry(item, root)

    def _git_listing(self, directory: str) -> list[str] | None:
        """The files git would show in `directory` (tracked, or untracked and not ignored),
        relative to it; None when it is not inside a work tree."""
        if not may_be_in_work_tree(directory):
            return None
        # Imported here: files named one by one (the pre-commit hook) need no subprocess.
        from keysentry.scanner.git.run import GitError, run_git

        try:
            listing = run_git(
                directory,
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
                "--deduplicate",
            )
        except GitError:
            return None  # not in a work tree, or no git on this machine: walk instead
        return [os.fsdecode(p) for p in listing.split(b"\0") if p]

    def _excluded(self, rel: str) -> bool:
        rel = rel.replace(os.sep, "/")
        return any(fnmatch.fnmatchcase(rel, p) for p in self._exclude)


def may_be_in_work_tree(directory: str) -> bool:
    """Whether git could take `directory` for part of a work tree: the environment names a
    repository, or `directory` or a parent holds a `.git` (a repository, or a worktree's link
    to one) or a `HEAD` (it may be a repository itself, whose config can name a work tree).
    Nowhere else does git look, so elsewhere asking it (a process and `subprocess`: 6 ms of a
    scan) would only hear that there is none, and the walk runs at once."""
    if any(os.environ.get(name) for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")):
        return True
    return any(  # git looks from the physical directory up, as `ancestors` does
        os.path.lexists(os.path.join(here, name))
        for here in ancestors(directory)
        for name in (".git", "HEAD")
    )


def _walk(directory: str) -> Iterator[str | Skip]:
    """Every file below `directory` (paths joined onto it), without `.git/`, symlinks to
    directories or special files; types come from the directory listing, not from stat.

    Each directory is opened relative to an open ancestor (an anchor), never by its whole
    path, so depth is no limit; a new anchor is kept open only every `_ANCHOR_AFTER` bytes of
    path, so open descriptors stay few however deep the tree."""
    pending = [(_Anchor(None, 1), directory, directory)]  # (anchor, path from it, shown)
    while pending:
        anchor, rel, top = pending.pop()
        try:
            fd = os.open(rel, _DIRECTORY if anchor.fd is None else _SUBDIRECTORY, dir_fd=anchor.fd)
        except OSError as exc:
            anchor.release()
            yield Skip(top, f"unreadable directory: {exc.strerror or exc}", unreadable=True)
            continue
        try:
            with os.scandir(fd) as listing:
                items = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            os.close(fd)
            anchor.release()
            yield Skip(top, f"unreadable directory: {exc.strerror or exc}", unreadable=True)
            continue
        subdirectories = []
        for item in items:
            path = os.path.join(top, item.name) if top != "." else item.name
            if item.is_symlink() or item.is_file(follow_symlinks=False):
                yield path  # symlinks are judged when read
            elif item.is_dir(follow_symlinks=False):
                if item.name != ".git":
                    subdirectories.append((item.name, path))
            else:
                yield Skip(path, _SPECIAL)
        if subdirectories and len(rel) > _ANCHOR_AFTER:
            children, base = _Anchor(fd, len(subdirectories)), ""
        else:
            os.close(fd)
            children, base = anchor, rel
            anchor.users += len(subdirectories)
        anchor.release()
        pending.extend(
            (children, os.path.join(base, name) if base else name, path)
            for name, path in reversed(subdirectories)
        )


class _Anchor:
    """An open directory that deeper ones are opened relative to (None: the working
    directory), closed when the last directory that uses it has been opened."""

    __slots__ = ("fd", "users")

    def __init__(self, fd: int | None, users: int) -> None:
        self.fd, self.users = fd, users

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self.fd is not None:
            os.close(self.fd)


def _open_deep(path: str) -> int:
    """Open a file whose path is too long for one system call, a directory at a time."""
    *directories, name = path.split(os.sep)
    fd = os.open(os.sep if path.startswith(os.sep) else os.curdir, _DIRECTORY)
    try:
        for part in directories:
            if part:
                inner = os.open(part, _DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = inner
        return os.open(name, OPEN_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


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
