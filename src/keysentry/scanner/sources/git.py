"""Talking to git: one-shot commands with one-line errors, and a streaming blob reader.

keysentry drives the `git` binary rather than GitPython: importing GitPython alone costs about
140 ms, more than a whole staged scan may take, and `git cat-file --batch` is the fastest way
to read objects from Python either way.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterable, Iterator
from typing import IO, NamedTuple

from keysentry.errors import InputError

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\n"


class GitError(InputError):
    """git failed, or the repository cannot be scanned as asked."""


class Repo(NamedTuple):
    """A repository as git sees it from `path`."""

    path: str
    git_dir: str  # the common git dir: shared by all worktrees
    work_tree: str | None  # None for a bare repository
    object_format: str  # sha1 or sha256
    shallow: bool

    @property
    def id_length(self) -> int:
        return 64 if self.object_format == "sha256" else 40

    @property
    def empty_tree(self) -> str:
        if self.object_format == "sha256":
            return "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"
        return "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

    def git(self, *args: str, check: bool = True) -> bytes:
        return run_git(self.path, *args, check=check)

    def text(self, *args: str) -> str:
        return self.git(*args).decode("utf-8", "surrogateescape").strip()

    def has_commits(self) -> bool:
        return bool(self.git("rev-parse", "--verify", "--quiet", "HEAD", check=False).strip())

    def resolve(self, rev: str) -> str:
        """The commit id `rev` names, or a GitError naming `rev`."""
        out = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
                       check=False).strip()  # fmt: skip
        if not out:
            raise GitError(f"{rev!r} is not a commit in {self.path}")
        return out.decode()

    def refs(self) -> list[tuple[str, str]]:
        """(name, object id) of HEAD and every ref, annotated tags peeled to what they tag;
        sorted. Equal lists mean equal histories."""
        out = self.git("show-ref", "--head", "--dereference", check=False)  # exit 1: no refs
        targets: dict[str, str] = {}
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            object_id, _, name = line.partition(" ")
            targets[name.removesuffix("^{}")] = object_id  # the peeled line comes second
        return sorted(targets.items())


def run_git(path: str, *args: str, check: bool = True) -> bytes:
    try:
        done = subprocess.run(["git", "-C", path, *args], capture_output=True, check=False)
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}") from None
    if check and done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = message[-1] if message else f"exit code {done.returncode}"
        raise GitError(f"git {args[0]} failed in {path}: {reason.removeprefix('fatal: ')}")
    return done.stdout


def shallow_error(repo: Repo, what: str) -> GitError:
    return GitError(
        f"{repo.path} is a shallow clone: commits before its cut-off are missing, so {what} "
        "would miss keys in them. Fetch the full history (git fetch --unshallow, or "
        "fetch-depth: 0 in actions/checkout), or pass --allow-shallow"
    )


def open_repo(path: str) -> Repo:
    """The repository at `path`, or a one-line GitError saying why there is none."""
    if not os.path.isdir(path):
        raise GitError(f"{path}: no such directory")
    out = run_git(path, "rev-parse", "--is-bare-repository", "--is-shallow-repository",
                      "--git-common-dir", "--show-object-format", "--show-toplevel",
                      check=False)  # fmt: skip
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if len(lines) < 4:
        raise GitError(f"{path} is not inside a git repository")
    bare, shallow, common, object_format = lines[0] == "true", lines[1] == "true", *lines[2:4]
    git_dir = os.path.normpath(os.path.join(path, common))  # join keeps an absolute `common`
    work_tree = None if bare or len(lines) < 5 else lines[4]
    return Repo(path, git_dir, work_tree, object_format, shallow)


class BlobReader:
    """A long-lived `git cat-file --batch`: ids in, (id, content or None if missing) out,
    in order. A feeder thread writes ids so that reading never waits on writing."""

    def __init__(self, repo: Repo) -> None:
        self._process = subprocess.Popen(
            ["git", "-C", repo.path, "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=1 << 16,
        )

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._process.stdin and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        self._process.kill()
        self._process.wait()

    def read(self, ids: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        ids = list(ids)
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        feeder = threading.Thread(target=_feed, args=(stdin, ids), daemon=True)
        feeder.start()
        for object_id in ids:
            header = stdout.readline()
            if not header:
                raise GitError("git cat-file stopped early: the repository may be corrupt")
            fields = header.split()
            if len(fields) < 3 or fields[1] == b"missing" or fields[1] != b"blob":
                yield object_id, None  # missing, or not a blob (a corrupt or odd object)
                if len(fields) == 3 and fields[1] != b"missing":
                    stdout.read(int(fields[2]) + 1)
                continue
            size = int(fields[2])
            data = stdout.read(size + 1)[:size]
            yield object_id, data
        feeder.join()


def _feed(stdin: IO[bytes], ids: list[str]) -> None:
    try:
        for start in range(0, len(ids), 4096):
            stdin.write("".join(f"{i}\n" for i in ids[start : start + 4096]).encode())
        stdin.flush()
    except (BrokenPipeError, ValueError):
        pass  # the reader closed early; it reports why


def nul_tokens(stream: IO[bytes], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The NUL-separated tokens of a stream, without reading it all into memory."""
    pending = b""
    while chunk := stream.read(chunk_size):
        parts = (pending + chunk).split(b"\0")
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def stream_git(repo: Repo, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["git", "-C", repo.path, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finish(process: subprocess.Popen[bytes], what: str) -> None:
    """Wait for a streamed git command; a failure becomes a one-line GitError."""
    assert process.stderr is not None
    error = process.stderr.read()
    if process.wait() != 0:
        lines = error.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1].removeprefix("fatal: ") if lines else f"exit code {process.returncode}"
        raise GitError(f"git {what} failed: {reason}")
