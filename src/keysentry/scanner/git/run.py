"""The one place that starts `git`, with settings a scanned repository cannot override.

The repository being scanned may be an attacker's, and so may its `.git/config`: settings such
as `core.fsmonitor` (run by any command that refreshes the index: `ls-files`, `diff-index`),
`log.showSignature` (runs `gpg.program`), a pager, an external diff or textconv driver or a
credential helper name programs git would run. Replace refs and grafts make git show other
objects in place of the real ones, which would hide a key's commit; `log.showRoot=false` hides
what a root commit adds; a lazy fetch from a promisor remote would go to the network. Every
invocation here overrides all of that on the command line (it beats every config file) and
in the environment; whatever the caller's environment says of the index or the git dir
(`GIT_INDEX_FILE` in a hook) is kept.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import IO

from keysentry.errors import InputError

_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
_HARDENED = (
    "--no-pager",
    "--no-replace-objects",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.pager=cat",
    "-c",
    "diff.external=",
    "-c",
    "credential.helper=",
    "-c",
    "protocol.allow=never",
    "-c",
    "log.showSignature=false",
    "-c",
    "log.showRoot=true",
    "-c",
    "i18n.logOutputEncoding=UTF-8",
)

_ENVIRONMENT = {
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_GRAFT_FILE": os.devnull,  # grafts are read from this file: none
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",  # keysentry only reads: never rewrite the index
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "LC_ALL": "C",  # messages and output in the form the parsers expect
}
_UNSET = ("GIT_EXTERNAL_DIFF", "GIT_ASKPASS", "SSH_ASKPASS")

# Diff and log options that keep programs named by .gitattributes or config from running.
NO_EXTERNAL = ("--no-ext-diff", "--no-textconv")


class GitError(InputError):
    """git failed, or the repository cannot be scanned as asked."""


def git_command(path: str, *args: str, hooks: bool = False) -> list[str]:
    """`hooks`: keep the repository's `core.hooksPath`, only to ask git where its hooks are
    (for `install-hook`); otherwise it points nowhere, so no hook can run."""
    return ["git", *_HARDENED, *(() if hooks else _NO_HOOKS), "-C", path, *args]


def git_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in _UNSET}
    environment.update(_ENVIRONMENT)
    return environment


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
