"""A repository as git sees it: one `rev-parse` at the start, then its refs on demand.

keysentry drives the `git` binary rather than GitPython: importing GitPython alone costs about
140 ms, more than a whole staged scan may take, and `git cat-file --batch` is the fastest way
to read objects from Python either way.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from keysentry.scanner.git.listing import SHOW_REFS, parse_refs
from keysentry.scanner.git.run import GitError, run_git

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\n"


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

    def hooks_dir(self) -> str:
        """Where git runs this repository's hooks from: `core.hooksPath`, else `hooks/`."""
        found = run_git(self.path, "rev-parse", "--git-path", "hooks", hooks=True)
        return found.decode("utf-8", "surrogateescape").strip()

    def has_commits(self) -> bool:
        return bool(self.git("rev-parse", "--verify", "--quiet", "HEAD", check=False).strip())

    def resolve(self, rev: str) -> str:
        """The commit id `rev` names, or a GitError naming `rev`."""
        out = self.git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
        ).strip()
        if not out:
            raise GitError(f"{rev!r} is not a commit in {self.path}")
        return out.decode()

    def refs(self) -> list[tuple[str, str]]:
        """(name, object id) of HEAD and every ref, annotated tags peeled to what they tag;
        sorted. Equal lists mean equal histories."""
        return parse_refs(self.git(*SHOW_REFS, check=False))  # exit 1: no refs


def substitution_notes(repo: Repo, refs: list[tuple[str, str]]) -> list[str]:
    """What the repository asks git to show in place of its real objects, which keysentry
    ignores: each is worth a look, since it can hide a commit from other tools."""
    notes = []
    replaced = [
        name.removeprefix("refs/replace/") for name, _ in refs if name.startswith("refs/replace/")
    ]
    if replaced:
        shown = ", ".join(replaced[:5]) + (
            f" and {len(replaced) - 5} more" if len(replaced) > 5 else ""
        )
        notes.append(
            f"{len(replaced)} replace ref{'s' * (len(replaced) != 1)} (git replace) "
            f"substitute other objects for {shown}: ignored, the real objects were scanned"
        )
    if os.path.exists(os.path.join(repo.git_dir, "info", "grafts")):
        notes.append("info/grafts rewrites commit parents: ignored, the real history was scanned")
    return notes


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
    out = run_git(
        path,
        "rev-parse",
        "--is-bare-repository",
        "--is-shallow-repository",
        "--git-common-dir",
        "--show-object-format",
        "--show-toplevel",
        check=False,
    )
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if len(lines) < 4:
        raise GitError(f"{path} is not inside a git repository")
    bare, shallow, common, object_format = lines[0] == "true", lines[1] == "true", *lines[2:4]
    git_dir = os.path.normpath(os.path.join(path, common))  # join keeps an absolute `common`
    work_tree = None if bare or len(lines) < 5 else lines[4]
    return Repo(path, git_dir, work_tree, object_format, shallow)
