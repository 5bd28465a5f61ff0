"""What keeps a finding out of a report: the ignore file and the baseline.

Both are keyed by fingerprint (an HMAC of the key), never by line, so moving code never churns
them, and neither ever holds a key. Inline allow markers are decided in `findings`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from keysentry.atomic import write_atomically
from keysentry.errors import InputError
from keysentry.scanner.findings import Finding

_FINGERPRINT = re.compile(r"[0-9a-f]{32}\Z")
BASELINE_VERSION = 1


class IgnoreRules(NamedTuple):
    """`.keysentryignore`: one fingerprint or one path pattern per line, `#` for comments."""

    fingerprints: frozenset[str] = frozenset()
    path_patterns: tuple[str, ...] = ()

    def ignores(self, finding: Finding) -> bool:
        if finding.fingerprint in self.fingerprints:
            return True
        path = finding.path
        name = path.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(name, p) for p in self.path_patterns
        )


def load_ignore_file(path: Path) -> IgnoreRules:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return IgnoreRules()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ignore file {path}: {_reason(exc)}") from None
    fingerprints, patterns = set(), []
    for raw in lines:
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        if _FINGERPRINT.match(entry):
            fingerprints.add(entry)
        else:
            patterns.append(entry.removeprefix("./"))
    return IgnoreRules(frozenset(fingerprints), tuple(patterns))


def load_baseline(path: Path) -> frozenset[str]:
    """The fingerprints a baseline file accepts."""
    return frozenset(load_baseline_entries(path))


def load_baseline_entries(path: Path) -> dict[str, dict[str, str]]:
    """A baseline's entries: fingerprint -> {kind, redacted}."""
    import json

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"baseline {path} does not exist (create it with --update-baseline)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read baseline {path}: {_reason(exc)}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"baseline {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    entries = document.get("fingerprints") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not all(_FINGERPRINT.match(k) for k in entries):
        raise InputError(f"baseline {path} has no 'fingerprints' object of keysentry fingerprints")
    return {k: v if isinstance(v, dict) else {} for k, v in entries.items()}


def write_baseline(path: Path, findings: Iterable[Finding]) -> int:
    """Write the fingerprints of `findings` as the new baseline; returns how many it holds."""
    entries = {f.fingerprint: {"kind": f.kind.value, "redacted": f.redacted} for f in findings}
    return write_baseline_entries(path, entries)


def write_baseline_entries(path: Path, entries: dict[str, dict[str, str]]) -> int:
    """Write a baseline of these entries (sorted, so it never churns); returns their count."""
    import json

    document = {"version": BASELINE_VERSION, "tool": "keysentry", "fingerprints": entries}
    write_file(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return len(entries)


def write_file(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically; a failure is a one-line InputError."""
    try:
        write_atomically(path, text.encode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
