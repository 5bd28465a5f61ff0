"""The one check every adversarial test ends with: the key is nowhere.

Not in any text the test captured (stdout, stderr, exception messages, log records, health
payloads), and not in any file under the directories it names (reports, caches, journals,
`.git/keysentry/`): neither its secret half written plainly (or as UTF-16), nor the key in any
encoding keysentry's own detector reads (base64, hex, percent, escapes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from keysentry.scanner.detect import detect


def _holds(data: bytes, key: str) -> bool:
    secret_half = key[len(key) // 2 :]  # past any prefix: enough of the key to be a leak
    if secret_half.encode() in data or secret_half.encode("utf-16-le") in data:
        return True
    return any(match.key == key.encode() for match in detect(data))


def assert_nowhere(key: str, *texts: object, under: Iterable[Path] = ()) -> None:
    """Fail (without showing the key) if `key` is in any of `texts` or any file under `under`."""
    for index, text in enumerate(texts):
        data = text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogateescape")
        if _holds(data, key):
            raise AssertionError(f"text #{index} holds the key")
    for root in under:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            if _holds(path.read_bytes(), key):
                raise AssertionError(f"{path} holds the key")
