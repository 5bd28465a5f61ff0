"""Plain git hooks for teams without pre-commit, and the pre-push range logic both share.

`install-hook` writes `.git/hooks/pre-commit` (or `pre-push`), or into `core.hooksPath` when it
is set. An existing hook that is not ours is kept: it is renamed `<hook>.keysentry-chained` and
run first, with the same arguments and standard input; `uninstall-hook` puts it back.
Installing twice changes nothing.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

from keysentry.errors import InputError
from keysentry.scanner.git.repo import Repo, open_repo

MARKER = "# Installed by keysentry: keysentry uninstall-hook removes it."
CHAINED_SUFFIX = ".keysentry-chained"
ZEROS = frozenset("0")

_SCRIPT = """#!/bin/sh
{marker}
# The hook that was here before runs first: {chained}
hooks_dir=$(dirname "$0")
input=$(cat)
if [ -x "$hooks_dir/{chained}" ]; then
    printf '%s\\n' "$input" | "$hooks_dir/{chained}" "$@" || exit $?
fi
if [ -x {python} ]; then
    printf '%s\\n' "$input" | {python} -m keysentry {command}
elif command -v keysentry >/dev/null 2>&1; then
    printf '%s\\n' "$input" | keysentry {command}
else
    echo "keysentry: not found (installed for {python}); reinstall it or run" \\
        "keysentry uninstall-hook" >&2
    exit 2
fi
"""

# Quiet on a clean commit, as pre-commit's hook is: a report, a warning or an error is shown.
_COMMANDS = {"pre-commit": "scan --staged --quiet", "pre-push": "pre-push"}


def hooks_dir(repo: Repo) -> Path:
    """Where git looks for hooks: `core.hooksPath` if set, else the git dir's `hooks/`."""
    if repo.work_tree is None:
        raise InputError(f"{repo.path} is a bare repository: it runs no commit hooks")
    found = repo.hooks_dir()
    return Path(repo.work_tree, found) if not os.path.isabs(found) else Path(found)


def install(path: str, hook: str) -> str:
    """Install the hook; returns what was done, for the user."""
    repo = open_repo(path)
    directory = hooks_dir(repo)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / hook
    chained = directory / f"{hook}{CHAINED_SUFFIX}"
    note = f"installed {target}"
    if target.exists() and not _is_ours(target):
        if chained.exists():
            raise InputError(f"{target} and {chained} both exist: merge them by hand first")
        target.rename(chained)
        note += f"; the existing hook now runs first, from {chained}"
    elif target.exists():
        note = f"{target} was already installed; refreshed it"
    script = _SCRIPT.format(
        marker=MARKER,
        chained=chained.name,
        python=shlex.quote(sys.executable),
        command=_COMMANDS[hook],
    )
    target.write_text(script)
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return note


def uninstall(path: str, hook: str) -> str:
    repo = open_repo(path)
    directory = hooks_dir(repo)
    target = directory / hook
    chained = directory / f"{hook}{CHAINED_SUFFIX}"
    if not target.exists():
        return f"no {hook} hook in {directory}: nothing to remove"
    if not _is_ours(target):
        raise InputError(f"{target} was not installed by keysentry: left as it is")
    target.unlink()
    if chained.exists():
        chained.rename(target)
        return f"removed keysentry's {hook} hook and restored the previous one"
    return f"removed {target}"


def _is_ours(hook: Path) -> bool:
    try:
        return MARKER in hook.read_text(errors="replace")
    except OSError:
        return False


def push_spans(stdin: str, environ: dict[str, str]) -> list[str]:
    """The commit ranges a push sends, as `A..B` (an all-zeros A for a new branch).

    Under pre-commit, its environment says (`PRE_COMMIT_FROM_REF`/`_TO_REF`, or only
    `PRE_COMMIT_LOCAL_BRANCH` when the push includes the root commit). As a plain git hook,
    standard input has a line `<local ref> <local sha> <remote ref> <remote sha>` per ref.
    """
    start, end = environ.get("PRE_COMMIT_FROM_REF"), environ.get("PRE_COMMIT_TO_REF")
    if start and end:
        return [f"{start}..{end}"]
    if environ.get("PRE_COMMIT_LOCAL_BRANCH"):
        return [f"{'0' * 40}..{environ['PRE_COMMIT_LOCAL_BRANCH']}"]
    spans = []
    for line in stdin.splitlines():
        fields = line.split()
        if len(fields) != 4:
            continue
        _, local_sha, _, remote_sha = fields
        if set(local_sha) == ZEROS:
            continue  # a deletion pushes no content
        spans.append(f"{remote_sha}..{local_sha}")
    return spans
