"""The rotation journal: `.keysentry/rotate/<env>.json` beside the config, one per environment.

It holds the reference, the old and the new key's fingerprints, redacted forms and ids, the
old value's version in its store, and the steps done; never a key.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from keysentry import journal

JOURNAL_DIR = Path(".keysentry") / "rotate"
CRASH_AFTER = "KEYSENTRY_ROTATE_CRASH_AFTER"  # tests: die right after recording this step
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class RotationJournal(journal.Journal):
    crash_variable = CRASH_AFTER


def journal_path(base: Path, env: str) -> Path:
    """The environment's journal; a name that is not plain becomes a digest (the config is
    text anyone could have written: no path tricks)."""
    name = env if _PLAIN.fullmatch(env) else "env-" + hashlib.sha256(env.encode()).hexdigest()[:16]
    return base / JOURNAL_DIR / f"{name}.json"


def load(base: Path, env: str) -> RotationJournal | None:
    path = journal_path(base, env)
    data = RotationJournal.read(path)
    if data is None:
        return None
    found = RotationJournal(path, data)
    found.data = data
    return found


def interrupted(base: Path) -> list[str]:
    """The environments with a rotation journal under `base`."""
    directory = base / JOURNAL_DIR
    if not directory.is_dir():
        return []
    envs = []
    for path in sorted(directory.glob("*.json")):
        data = RotationJournal.read(path)
        if data is not None and isinstance(data.get("env"), str):
            envs.append(data["env"])
    return envs


def discard(found: RotationJournal) -> None:
    found.path.unlink(missing_ok=True)
    for directory in (found.path.parent, found.path.parent.parent):
        try:
            directory.rmdir()
        except OSError:
            break  # not empty: another environment's journal, or something else
