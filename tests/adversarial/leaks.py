"""The one check every adversarial test ends with: the key is nowhere.

Not in any text the test captured (stdout, stderr, exception messages, log records, health
payloads), and not in any file under the directories it names (reports, caches, journals,
`.git/keysentry/`), whether written plainly or in the encodings the scanner reads.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path


def _forms(key: str) -> list[bytes]:
    raw = key.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        raw.hex().encode(),
        key.encode("utf-16-le"),
    ]


def assert_nowhere(key: str, *texts: object, under: Iterable[Path] = ()) -> None:
    """Fail (without showing the key) if `key` is in any of `texts` or any file under `under`.
    The secret half is what is looked for, so a prefix such as `sk-proj-` alone is fine."""
    needle = key[len(key) // 2 :]  # past any prefix: enough of the key to be a leak
    forms = _forms(needle)
    for index, text in enumerate(texts):
        data = text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogateescape")
        if any(form in data for form in forms):
            raise AssertionError(f"text #{index} holds the key")
    for root in under:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            data = path.read_bytes()
            if any(form in data for form in forms):
                raise AssertionError(f"{path} holds the key")
