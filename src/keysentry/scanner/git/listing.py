"""What git lists, parsed: the changes a commit of the index would make (`git diff-index
--cached`) and the refs (`git show-ref`). Apart from the modules that act on them (`staged.py`,
`repo.py`) and free of their imports, because the commit hooks' shortcut (`precheck`) lists
them too, before anything heavy is loaded.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not `typing`'s: importing it costs the hook 15 ms on Python 3.11
if TYPE_CHECKING:
    from collections.abc import Iterator

# Additions, copies, modifications, renames and type changes: every change that brings content.
# Rename detection names a renamed file's HEAD blob, so its old keys are not reported as new.
STAGED_DIFF = ("diff-index", "--cached", "-z", "--no-abbrev", "-M", "--diff-filter=ACMRT")
GITLINK = "160000"  # a submodule entry: a commit id, not content


def parse_raw(raw: bytes) -> Iterator[tuple[str, str, str | None]]:
    """(path, new blob id, the HEAD blob it replaces or None) of each change in `raw`, the
    output of STAGED_DIFF; submodule entries left out."""
    tokens = raw.split(b"\0")
    i = 0
    while i < len(tokens) and tokens[i].startswith(b":"):
        _, new_mode, old_id, new_id, status = tokens[i][1:].decode().split(" ")
        if status[0] in "RC":  # renames and copies name the source, then the destination
            path, i = os.fsdecode(tokens[i + 2]), i + 3
        else:
            path, i = os.fsdecode(tokens[i + 1]), i + 2
        if new_mode == GITLINK:
            continue
        yield path, new_id, None if set(old_id) == {"0"} else old_id


SHOW_REFS = ("show-ref", "--head", "--dereference")


def parse_refs(out: bytes) -> list[tuple[str, str]]:
    """(name, object id) of HEAD and every ref in `out`, the output of SHOW_REFS, annotated
    tags peeled to what they tag; sorted. Equal lists mean equal histories."""
    targets: dict[str, str] = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        object_id, _, name = line.partition(" ")
        targets[name.removesuffix("^{}")] = object_id  # the peeled line comes second
    return sorted(targets.items())
