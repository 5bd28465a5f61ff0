"""From matches in a blob to findings: where each key is, its fingerprint, its redacted form.

A Blob is what every source yields: bytes and where they came from. `findings_in` runs the
detector on one blob and attaches what a person needs to act on each match: path, line and
column of the decoded line, byte offset, and a location-free fingerprint.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from keysentry.errors import InputError
from keysentry.scanner.detect import Match, detect
from keysentry.scanner.keys import Confidence, KeyKind
from keysentry.secret import Secret, redact

# The fingerprint is an HMAC so that it cannot be looked up in a table of hashed keys; the key is
# fixed so that fingerprints agree across machines, baselines and ignore files.
_FINGERPRINT_KEY = b"keysentry/fingerprint/v1"

_INLINE_ALLOW = (b"keysentry:allow", b"gitleaks:allow", b"pragma: allowlist secret")
_ALLOW_NEXT_LINE = b"pragma: allowlist nextline secret"

_NO_PROVENANCE: Mapping[str, Any] = MappingProxyType({})

_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def fingerprint(key: str) -> str:
    """The location-free identity of a key: the same key anywhere has the same fingerprint."""
    import hashlib  # here, not at the top: loading OpenSSL costs 4 ms that a clean scan skips
    import hmac

    return hmac.new(_FINGERPRINT_KEY, key.encode(), hashlib.sha256).hexdigest()[:32]


class Blob(NamedTuple):
    """Content to scan and where it came from. `path` is what reports show."""

    path: str
    data: bytes
    provenance: Mapping[str, Any] = _NO_PROVENANCE


class Finding(NamedTuple):
    kind: KeyKind
    confidence: Confidence
    path: str
    line: int  # 1-based, in the decoded text
    column: int  # 1-based, in characters of the decoded line
    end_column: int
    offset: int  # byte offset in the blob as stored
    secret: Secret
    fingerprint: str
    encoding: tuple[str, ...]
    binary: bool
    inline_allowed: bool
    provenance: Mapping[str, Any] = _NO_PROVENANCE

    @property
    def rule(self) -> str:
        return self.kind.rule

    @property
    def redacted(self) -> str:
        return self.secret.redacted


class IncompleteBlob(InputError):
    """A blob the detector could not search completely (a bound on hostile input was reached).

    Raised rather than returned so that no caller can drop it by accident: a source that
    catches it reports the blob as not fully scanned (the scan is then incomplete, exit 2) and
    keeps `findings`, the keys found in what was searched."""

    def __init__(self, path: str, reason: str, findings: list[Finding]) -> None:
        super().__init__(f"{path}: not fully scanned: {reason}")
        self.path, self.reason, self.findings = path, reason, findings


def _utf16_text(data: bytes) -> tuple[bytes, str] | None:
    """The UTF-8 text of a file that starts with a UTF-16 BOM, and its codec."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, "replace").encode("utf-8"), codec
    return None


def findings_in(blob: Blob, inline_allow: bool = True) -> list[Finding]:
    """Every key in the blob as a finding, located in the blob's decoded text."""
    found = []
    utf16 = _utf16_text(blob.data)
    if utf16 is not None:
        text, codec = utf16
        found = [_finding(blob, text, m, codec, False, inline_allow) for m in detect(text)]
    # The bytes as they are, too: a file can start with what looks like a BOM and not be UTF-16.
    matches = detect(blob.data)
    if matches:
        binary = b"\0" in blob.data[:8192]
        found += [_finding(blob, blob.data, m, None, binary, inline_allow) for m in matches]
    return found


def _finding(
    blob: Blob, text: bytes, match: Match, utf16: str | None, binary: bool, inline_allow: bool
) -> Finding:
    line_start = text.rfind(b"\n", 0, match.start) + 1
    line_end = text.find(b"\n", match.end)
    line_end = len(text) if line_end < 0 else line_end
    column = len(text[line_start : match.start].decode("utf-8", "replace")) + 1
    width = len(text[match.start : match.end].decode("utf-8", "replace"))
    offset = match.start
    if utf16 is not None:  # the offset in the file as stored: the BOM plus UTF-16 code units
        offset = 2 + len(text[: match.start].decode("utf-8", "replace").encode(utf16))
    key = match.key.decode("ascii")
    allowed = inline_allow and _is_allowed(text, line_start, line_end)
    return Finding(
        kind=match.classified.kind,
        confidence=match.classified.confidence,
        path=blob.path,
        line=text.count(b"\n", 0, match.start) + 1,
        column=column,
        end_column=column + width,
        offset=offset,
        secret=Secret(key, redact(key, match.classified.prefix)),
        fingerprint=fingerprint(key),
        encoding=tuple(codec.value for codec in match.encoding),
        binary=binary,
        inline_allowed=allowed,
        provenance=blob.provenance,
    )


def _is_allowed(text: bytes, line_start: int, line_end: int) -> bool:
    line = text[line_start:line_end]
    if any(marker in line for marker in _INLINE_ALLOW):
        return True
    previous_start = text.rfind(b"\n", 0, max(0, line_start - 1)) + 1
    return line_start > 0 and _ALLOW_NEXT_LINE in text[previous_start:line_start]
