"""The one place that starts `git` for a scan, through `subprocess`, with the hardened command
line and environment of `spawn` (what a scanned repository cannot override, and why).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import IO

from keysentry.errors import InputError
from keysentry.scanner.git.spawn import NO_EXTERNAL as NO_EXTERNAL
from keysentry.scanner.git.spawn import git_command, git_environment


class GitError(InputError):
    """git failed, or the repository cannot be scanned as asked."""


def run_git(path: str, *args: str, check: bool = True, hooks: bool = False) -> bytes:
    """git's output; with `check`, a failure is a one-line GitError."""
    try:
        done = subprocess.run(
            git_command(path, *args, hooks=hooks),
            env=git_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise cannot_run(exc) from None
    if check and done.returncode != 0:
        raise GitError(f"git {args[0]} failed in {path}: {_reason(done.stderr, done.returncode)}")
    return done.stdout


def popen_git(
    path: str,
    *args: str,
    stdin: int | IO[bytes] = subprocess.DEVNULL,
    stdout: int | IO[bytes] = subprocess.PIPE,
    stderr: int | IO[bytes] = subprocess.PIPE,
    bufsize: int = -1,
) -> subprocess.Popen[bytes]:
    """A streaming git process; failing to start it is a one-line GitError."""
    try:
        return subprocess.Popen(
            git_command(path, *args),
            env=git_environment(),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            bufsize=bufsize,
        )
    except OSError as exc:
        raise cannot_run(exc) from None


def cannot_run(exc: OSError) -> GitError:
    return GitError(f"cannot run git: {exc.strerror or exc}")


def finish(process: subprocess.Popen[bytes], what: str) -> None:
    """Wait for a streamed git command; a failure becomes a one-line GitError."""
    assert process.stderr is not None
    error = process.stderr.read()
    if process.wait() != 0:
        raise GitError(f"git {what} failed: {_reason(error, process.returncode)}")


def _reason(stderr: bytes, code: int) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1].removeprefix("fatal: ") if lines else f"exit code {code}"


def nul_tokens(stream: IO[bytes], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The NUL-separated tokens of a stream, without reading it all into memory."""
    pending = b""
    while chunk := stream.read(chunk_size):
        parts = (pending + chunk).split(b"\0")
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending
