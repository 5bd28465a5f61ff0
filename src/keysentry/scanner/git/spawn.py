"""The command line and environment of every git process keysentry starts, with settings a
scanned repository cannot override, and a runner that needs no `subprocess`.

The repository being scanned may be an attacker's, and so may its `.git/config`: settings such
as `core.fsmonitor` (run by any command that refreshes the index: `ls-files`, `diff-index`),
`log.showSignature` (runs `gpg.program`), a pager, an external diff or textconv driver or a
credential helper name programs git would run. Replace refs and grafts make git show other
objects in place of the real ones, which would hide a key's commit; `log.showRoot=false` hides
what a root commit adds; a lazy fetch from a promisor remote would go to the network. Every
invocation overrides all of that on the command line (it beats every config file) and in the
environment; whatever the caller's environment says of the index or the git dir
(`GIT_INDEX_FILE` in a hook) is kept.

`run.py` starts git through `subprocess` for every scan; `output` here starts it with
`os.posix_spawnp`, for the pre-commit shortcuts (scanner/precheck.py), which `subprocess`'s
imports alone would cost a tenth of their time. Both build the process from the same two
functions below.
"""

from __future__ import annotations

import os

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
    # No transport at all: a repository's own `protocol.<name>.allow=always` beats the command
    # line's `protocol.allow=never`, and a partial clone's lazy fetch of a missing blob would
    # then run its remote (`ext::<command>`). Only this variable beats the repository's config.
    "GIT_ALLOW_PROTOCOL": "none",
    "GIT_NO_LAZY_FETCH": "1",  # and no lazy fetch of a missing object, where git knows it
    "GIT_OPTIONAL_LOCKS": "0",  # keysentry only reads: never rewrite the index
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "LC_ALL": "C",  # messages and output in the form the parsers expect
}
_UNSET = ("GIT_EXTERNAL_DIFF", "GIT_ASKPASS", "SSH_ASKPASS")

# Diff and log options that keep programs named by .gitattributes or config from running.
NO_EXTERNAL = ("--no-ext-diff", "--no-textconv")


def git_command(path: str, *args: str, hooks: bool = False) -> list[str]:
    """`hooks`: keep the repository's `core.hooksPath`, only to ask git where its hooks are
    (for `install-hook`); otherwise it points nowhere, so no hook can run."""
    return ["git", *_HARDENED, *(() if hooks else _NO_HOOKS), "-C", path, *args]


def git_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in _UNSET}
    environment.update(_ENVIRONMENT)
    return environment


def output(path: str, *args: str, stdin: bytes = b"", most: int) -> bytes | None:
    """What `git ARGS` (run in `path`, hardened) writes to its standard output, given `stdin`;
    None when it fails, writes more than `most` bytes, or cannot be run (its standard error is
    dropped: a caller that gets None does the work the full way, which says why). `stdin` is
    written whole before the output is read, so only as much as the pipe takes at once (64 KiB
    on Linux): more, and this gives up rather than risk both sides waiting on each other."""
    if not hasattr(os, "posix_spawnp"):
        return None  # not a POSIX system: the full way
    out_read, out_write = os.pipe()
    in_read, in_write = os.pipe()
    try:
        pid = os.posix_spawnp(
            "git",
            git_command(path, *args),
            git_environment(),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, in_read, 0),
                (os.POSIX_SPAWN_DUP2, out_write, 1),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
        )
    except OSError:
        for fd in (out_read, out_write, in_read, in_write):
            os.close(fd)
        return None
    os.close(out_write)
    os.close(in_read)
    chunks, size = [], 0
    try:
        fits = _write_at_once(in_write, stdin)
        while fits and size <= most and (chunk := os.read(out_read, 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(out_read)
    if not fits or size > most:
        os.kill(pid, 9)  # SIGKILL (`signal` is not imported for its name)
    _, status = os.waitpid(pid, 0)
    if not fits or size > most or os.waitstatus_to_exitcode(status) != 0:
        return None
    return b"".join(chunks)


def _write_at_once(fd: int, data: bytes) -> bool:
    """Write `data` to the pipe `fd` without waiting, and close it: whether it all fit."""
    os.set_blocking(fd, False)
    try:
        return not data or os.write(fd, data) == len(data)
    except OSError:  # full (BlockingIOError), or git has gone already (BrokenPipeError)
        return False
    finally:
        os.close(fd)
