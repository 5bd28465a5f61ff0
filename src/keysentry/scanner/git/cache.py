"""The incremental history caches: ids of blobs already scanned and found clean, and the
last scan's result.

It lives in the repository's git dir (`keysentry/clean-blobs`), so a second history scan reads
only objects it has not seen. It can never hide a finding: only blobs with no key at all are
recorded, and the file is tied to a hash of the detector's source, so any change to detection
starts it afresh. It is replaced atomically (temp file, fsync, rename): a crash leaves the old
cache or the new one, never half of one. It holds object ids only, never content.
"""

from __future__ import annotations

import json
import os
import stat

TYPE_CHECKING = False  # not `typing`'s: the hooks' shortcut reads the last result (precheck)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, TypeGuard

_DETECTOR_MODULES = (
    *("needles.py", "keys.py", "encodings.py", "detect.py", "findings.py"),
    "precheck.py",  # which blobs are archives, and which text has a byte order mark
    *("sources/archives.py", "sources/image.py"),  # what is searched inside an archive blob
)
_MAGIC = b"keysentry clean-blobs v1 "


def detector_hash() -> str:
    """A hash of the code that decides whether a blob holds a key."""
    here = os.path.dirname(os.path.dirname(__file__))  # keysentry/scanner
    return _digest64(b"".join(_read(os.path.join(here, name)) for name in _DETECTOR_MODULES))


def _read(path: str) -> bytes:
    """A regular file's content; OSError for anything else (a FIFO in its place would block)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        with open(fd, "rb", closefd=False) as file:
            return file.read()
    finally:
        os.close(fd)


def _digest64(data: bytes) -> str:
    """64 bits of BLAKE2b, taken from `_blake2`, where hashlib takes its own BLAKE2b (it never
    uses OpenSSL's): `import hashlib` would load OpenSSL, 3 ms of every cached rescan."""
    try:
        from _blake2 import blake2b
    except ImportError:  # a Python built without it
        import hashlib

        return hashlib.sha256(data).hexdigest()[:16]
    return blake2b(data, digest_size=8).hexdigest()


class CleanBlobCache:
    def __init__(self, git_dir: str, id_length: int) -> None:
        self._path = os.path.join(git_dir, "keysentry", "clean-blobs")
        self._id_bytes = id_length // 2
        self._header = _MAGIC + detector_hash().encode() + b"\n"
        self._known: set[bytes] = set()
        self._added: list[bytes] = []
        self._load()

    def _load(self) -> None:
        try:
            data = _read(self._path)
        except OSError:
            return  # no cache yet, or unreadable: scan everything
        if not data.startswith(self._header):
            return  # another detector version: start afresh
        body = memoryview(data)[len(self._header) :]
        width = self._id_bytes
        if len(body) % width:
            return  # torn or foreign: ignore it rather than trust part of it
        self._known = {bytes(body[i : i + width]) for i in range(0, len(body), width)}

    def __len__(self) -> int:
        return len(self._known)

    def knows(self, blob_id: str) -> bool:
        return bytes.fromhex(blob_id) in self._known

    def add(self, blob_ids: Iterable[str]) -> None:
        self._added += [bytes.fromhex(i) for i in blob_ids]

    def save(self) -> None:
        """Write the cache if anything was added; a failure to write only costs speed."""
        if not self._added:
            return
        ids = self._known.union(self._added)
        _save(self._path, self._header + b"".join(sorted(ids)))


class ResultCache:
    """The last history scan's outcome, reused while nothing it depends on has changed.

    Its key is every ref's target (so the same commits and blobs are reachable), the detector
    hash and the scan options. It records which blobs hold keys and each finding's timeline,
    by fingerprint and blob id: keys themselves are re-read from those blobs on every run, so
    the file never holds one.
    """

    def __init__(self, git_dir: str) -> None:
        self._path = os.path.join(git_dir, "keysentry", "history-result.json")

    def load(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            document = json.loads(_read(self._path))
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("key") != {**key, **_detector()}:
            return None
        result = document.get("result")
        return result if _well_formed(result) else None

    def load_previous(self, key: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The last result and its key when only the refs differ from `key` (same detector,
        options and shallowness): what a scan of a history that grew can start from."""
        try:
            document = json.loads(_read(self._path))
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict):
            return None
        old, result = document.get("key"), document.get("result")
        if not isinstance(old, dict) or not _well_formed(result):
            return None
        same = {**key, **_detector(), "refs": old.get("refs")}
        return (old, result) if old == same else None

    def save(self, key: dict[str, Any], result: dict[str, Any]) -> None:
        text = json.dumps({"key": {**key, **_detector()}, "result": result})
        _save(self._path, text.encode())


def _well_formed(result: object) -> TypeGuard[dict[str, Any]]:
    """Whether a stored result has every field a scan reads from it, of its type: one written
    by another version (or by hand) is scanned afresh, never trusted in part or crashed on."""
    if not isinstance(result, dict):
        return False
    hits, findings, too_big = result.get("hits"), result.get("findings"), result.get("too_big")
    return (
        isinstance(hits, list)
        and all(isinstance(h, str) for h in hits)
        and isinstance(findings, list)
        and all(_record(f) for f in findings)
        and isinstance(too_big, list)
        and all(_id_and_size(t) for t in too_big)
        and type(result.get("lfs_pointers")) is int
    )


def _record(finding: object) -> bool:
    if not isinstance(finding, dict):
        return False
    timeline = finding.get("git")
    return (
        isinstance(finding.get("fingerprint"), str)
        and isinstance(finding.get("path"), str)
        and isinstance(timeline, dict)
        and isinstance(timeline.get("blob"), str)
    )


def _id_and_size(item: object) -> bool:
    return (
        isinstance(item, list)
        and len(item) == 2
        and isinstance(item[0], str)
        and type(item[1]) is int
    )


def _detector() -> dict[str, str]:
    return {"detector": detector_hash()}


def _save(path: str, data: bytes) -> None:
    """Replace a cache file atomically; failing to write a cache only costs speed."""
    from pathlib import Path

    from keysentry.atomic import write_atomically

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomically(Path(path), data)
    except OSError:
        pass
