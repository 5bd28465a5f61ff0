"""From matches in a blob to findings: where each key is, its fingerprint, its redacted form.

A Blob is what every source yields: bytes and where they came from. `findings_in` runs the
detector on one blob and attaches what a person needs to act on each match: path, line and
column of the decoded line, byte offset, and a location-free fingerprint.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from keysentry.errors import InputError
from keysentry.scanner.precheck import BOM_FIRST, BOMS
from keysentry.secret import Secret, redact

if TYPE_CHECKING:
    from keysentry.scanner.detect import Match
    from keysentry.scanner.encodings import Codec
    from keysentry.scanner.keys import Confidence, KeyKind

# The fingerprint is an HMAC so that it cannot be looked up in a table of hashed keys; the key is
# fixed so that fingerprints agree across machines, baselines and ignore files.
_FINGERPRINT_KEY = b"keysentry/fingerprint/v1"

_INLINE_ALLOW = (b"keysentry:allow", b"gitleaks:allow", b"pragma: allowlist secret")
_ALLOW_NEXT_LINE = b"pragma: allowlist nextline secret"

_NO_PROVENANCE: Mapping[str, Any] = MappingProxyType({})


def fingerprint(key: str) -> str:
    """The location-free identity of a key: the same key anywhere has the same fingerprint.
    HMAC-SHA-256 (RFC 2104) of the key under `_FINGERPRINT_KEY`, first 32 hex digits."""
    inner, outer = _keyed_sha256()
    digest = inner.copy()
    digest.update(key.encode())
    final = outer.copy()
    final.update(digest.digest())
    hexadecimal: str = final.hexdigest()
    return hexadecimal[:32]


@functools.cache
def _keyed_sha256() -> tuple[Any, Any]:
    """SHA-256 fed with the fingerprint key XOR ipad and XOR opad: HMAC's two starts. SHA-256
    comes from CPython's own module (the one hashlib falls back to without OpenSSL): `hmac`
    and `hashlib` load OpenSSL, 3 ms that a scan finding a key would pay for this alone."""
    try:
        sha256 = __import__("_sha2" if sys.version_info >= (3, 12) else "_sha256").sha256
    except ImportError:  # a Python built without it
        import hashlib

        sha256 = hashlib.sha256
    block = _FINGERPRINT_KEY.ljust(64, b"\0")  # shorter than SHA-256's block: padded as is
    return sha256(bytes(b ^ 0x36 for b in block)), sha256(bytes(b ^ 0x5C for b in block))


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


def _bom_text(data: bytes) -> tuple[bytes, str, int] | None:
    """The UTF-8 text of a file that starts with a UTF-16 or UTF-32 BOM, its codec and the
    BOM's length."""
    if data[:1] not in BOM_FIRST:
        return None
    for bom, codec in BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, "replace").encode("utf-8"), codec, len(bom)
    return None


def findings_in(blob: Blob, inline_allow: bool = True) -> list[Finding]:
    """Every key in the blob as a finding, located in the blob's decoded text.

    Raises IncompleteBlob (carrying the findings made) when the detector's safety bound on
    decoding was reached, so that part of the blob went unsearched."""
    # Here, not at the top: the detector costs 10 ms of imports, which a scan that searches
    # no blob (a cached history rescan, a commit of deletions only) never pays.
    from keysentry.scanner.detect import search

    found: list[Finding] = []
    incomplete = []
    bom = _bom_text(blob.data)
    if bom is not None:
        text, codec, bom_length = bom
        detection = search(text)
        incomplete.append(detection.incomplete)
        view = _View(text, inline_allow, codec=codec, bom_length=bom_length)
        found += [view.finding(blob, m, binary=False) for m in detection.matches]
    # The bytes as they are, too: a file can start with what looks like a BOM and not be text.
    detection = search(blob.data)
    incomplete.append(detection.incomplete)
    if not detection.matches and not any(incomplete):
        return found
    from keysentry.scanner.encodings import Codec

    raw = _View(blob.data, inline_allow)
    wide: dict[Codec, _View] = {}
    for match in detection.matches:
        outer = match.encoding[0] if match.encoding else None
        if outer in (Codec.UTF16LE, Codec.UTF16BE):
            if bom is not None and bom[1].startswith("utf-16"):
                continue  # found in the decoded text already
            assert outer is not None
            if outer not in wide:
                wide[outer] = _View(_units(blob.data, outer), inline_allow, unit=2)
            view = wide[outer]
            found.append(view.finding(blob, match, binary=b"\0\0" in view.text[:4096]))
        else:
            found.append(raw.finding(blob, match, binary=b"\0" in blob.data[:8192]))
    reason = next((r for r in incomplete if r), None)
    if reason is not None:
        raise IncompleteBlob(blob.path, reason, found)
    return found


def _units(data: bytes, codec: Codec) -> bytes:
    """The blob read as UTF-16 from its start, one byte per code unit (ASCII as itself,
    anything else as 0xFF): lines and columns of a file without a BOM count code units."""
    from keysentry.scanner.encodings import utf16_views

    return next(v.data for v in utf16_views(data, 0, len(data)) if v.codec is codec)


class _View:
    """Text that matches are located in: the blob's bytes, its BOM-decoded text, or its UTF-16
    code units. Matches are asked for in order of position, so lines and columns are counted
    incrementally: a blob with many keys costs one pass, not one pass per key."""

    def __init__(
        self,
        text: bytes,
        inline_allow: bool,
        codec: str | None = None,
        bom_length: int = 0,
        unit: int | None = None,
    ) -> None:
        self.text, self.inline_allow = text, inline_allow
        self.codec, self.bom_length, self.unit = codec, bom_length, unit
        self._at = self._line_start = self._column = self._stored = 0
        self._line = 1
        self._allowed: dict[int, bool] = {}

    def _index(self, offset: int) -> int:
        return offset if self.unit is None else offset // self.unit

    def _advance(self, index: int) -> None:
        """Moves the cursor to `index`, counting lines, columns and stored bytes on the way."""
        text = self.text
        if index < self._at:  # out of order (nested matches): count from the start again
            self._at = self._line_start = self._column = self._stored = 0
            self._line = 1
        newlines = text.count(b"\n", self._at, index)
        if newlines:
            self._line += newlines
            self._line_start = text.rfind(b"\n", self._at, index) + 1
            self._column = self._width(self._line_start, index)
        else:
            self._column += self._width(self._at, index)
        if self.codec is not None:
            piece = text[self._at : index].decode("utf-8", "replace")
            self._stored += len(piece.encode(self.codec))
        self._at = index

    def _width(self, start: int, end: int) -> int:
        if self.unit is not None:
            return end - start
        return len(self.text[start:end].decode("utf-8", "replace"))

    def finding(self, blob: Blob, match: Match, binary: bool) -> Finding:
        start, end = self._index(match.start), self._index(match.end)
        self._advance(start)
        width = self._width(start, end)
        offset = self.bom_length + self._stored if self.codec is not None else match.start
        key = match.key.decode("ascii")
        return Finding(
            kind=match.classified.kind,
            confidence=match.classified.confidence,
            path=blob.path,
            line=self._line,
            column=self._column + 1,
            end_column=self._column + 1 + width,
            offset=offset,
            secret=Secret(key, redact(key, match.classified.prefix)),
            fingerprint=fingerprint(key),
            encoding=tuple(codec.value for codec in match.encoding),
            binary=binary,
            inline_allowed=self.inline_allow and self._is_allowed(),
            provenance=blob.provenance,
        )

    def _is_allowed(self) -> bool:
        line_start = self._line_start
        if line_start not in self._allowed:
            text = self.text
            line_end = text.find(b"\n", self._at)
            line = text[line_start : len(text) if line_end < 0 else line_end]
            allowed = any(marker in line for marker in _INLINE_ALLOW)
            previous_start = text.rfind(b"\n", 0, max(0, line_start - 1)) + 1
            if line_start > 0 and _ALLOW_NEXT_LINE in text[previous_start:line_start]:
                allowed = True
            self._allowed[line_start] = allowed
        return self._allowed[line_start]
