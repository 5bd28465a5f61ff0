"""Bytes in, OpenAI keys out: the hot loop of every scan.

One Aho-Corasick pass looks for the marker `T3BlbkFJ` and its encoded forms (`encodings`). At a
plain marker, the key around it is read off by its anatomy (`keys`); at an encoded one, the run
around it is decoded and searched again, up to MAX_DEPTH encodings deep. Nothing else in the
buffer is touched, so the cost is that of the literal search.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import ahocorasick_rs

from keysentry.scanner.encodings import NEEDLES, Codec, Decoded, decodings_around
from keysentry.scanner.keys import (
    BASE64URL,
    MARKER,
    MAX_HALF,
    MAX_PREFIX,
    MIN_HALF,
    Classified,
    classify,
)

MAX_DEPTH = 3

# Leftmost-first enables the library's SIMD prefilter (about 10x faster than the standard match
# kind here); the needles never overlap one another in text, so no hit is lost.
_SEARCH = ahocorasick_rs.BytesAhoCorasick(
    [n.pattern for n in NEEDLES], matchkind=ahocorasick_rs.MATCHKIND_LEFTMOST_FIRST
)
_RUN = re.compile(rb"[A-Za-z0-9_-]*")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class Match(NamedTuple):
    """A key found in a buffer. `start`/`end` span the key (or its encoded form) in that buffer;
    `encoding` lists the encodings peeled off to reach it, outermost first."""

    start: int
    end: int
    key: bytes
    classified: Classified
    encoding: tuple[Codec, ...] = ()

    def __repr__(self) -> str:  # never the key itself
        return (
            f"Match({self.start}:{self.end}, {self.classified.kind.value}, "
            f"{self.classified.prefix}...{self.key[-4:].decode()}, {self.encoding})"
        )


def detect(data: bytes, depth: int = 0) -> list[Match]:
    """Every OpenAI key in `data`, once each, in order of position."""
    hits = _SEARCH.find_matches_as_indexes(data)
    if not hits:
        return []
    found: dict[tuple[int, bytes], Match] = {}
    for index, start, _ in hits:
        needle = NEEDLES[index]
        if needle.codec is None:
            match = _key_at(data, start)
            if match is not None:
                found.setdefault((match.start, match.key), match)
        elif depth < MAX_DEPTH:
            for match in _decoded_keys(data, start, index, depth):
                found.setdefault((match.start, match.key), match)
    return sorted(found.values(), key=lambda m: (m.start, m.end))


def _decoded_keys(data: bytes, hit: int, needle_index: int, depth: int) -> list[Match]:
    needle = NEEDLES[needle_index]
    assert needle.codec is not None
    for decoded in decodings_around(data, hit, needle):
        inner_matches = detect(decoded.data, depth + 1)
        if inner_matches:
            return [_outer(inner, decoded, needle.codec) for inner in inner_matches]
    return []


def _outer(inner: Match, decoded: Decoded, codec: Codec) -> Match:
    """`inner`, found in decoded bytes, placed in the buffer they were decoded from."""
    origins = decoded.origins
    end = origins[inner.end] if inner.end < len(origins) else decoded.end
    encoding = (codec, *inner.encoding)
    return Match(origins[inner.start], end, inner.key, inner.classified, encoding)


def _key_at(buf: bytes, marker: int) -> Match | None:
    """The key whose marker is at `buf[marker]`, read off by its anatomy, or None."""
    after = marker + len(MARKER)
    right = _RUN.match(buf, after, after + MAX_HALF + 1)
    assert right is not None
    half = right.end() - after
    if not MIN_HALF <= half <= MAX_HALF:
        return None  # too short, or glued into a longer run
    # The left run holds the prefix and the first half, maybe behind an escape (`\n`, `%3D`).
    lo = max(0, marker - half - MAX_PREFIX - 6)
    left = _RUN.match(buf[lo:marker][::-1])
    assert left is not None
    run_start = marker - left.end()
    if run_start == lo and lo > 0 and buf[lo - 1] in BASE64URL:
        return None  # the run goes on: the key is glued inside a longer token
    first_half_at = marker - half
    if first_half_at < run_start:
        return None
    region = buf[run_start:first_half_at]
    first, second = buf[first_half_at:marker], buf[after : right.end()]
    at = region.find(b"sk-")
    while at >= 0:
        if _is_escape_residue(buf, run_start, region[:at]):
            classified = classify(region[at:], first, second)
            if classified is not None:
                key_start = run_start + at
                return Match(key_start, right.end(), buf[key_start : right.end()], classified)
        at = region.find(b"sk-", at + 1)
    return None


def _is_escape_residue(buf: bytes, run_start: int, residue: bytes) -> bool:
    """Whether the characters glued before `sk-` are the tail of an escape such as `\\n`,
    `\\u0022`, `\\x22` or `%3D` rather than part of a longer token."""
    if not residue:
        return True
    before = buf[run_start - 1 : run_start]
    if before == b"\\":
        if len(residue) == 1:
            return True
        width = {b"u": 5, b"x": 3}.get(residue[:1])
        return len(residue) == width and all(c in _HEX_DIGITS for c in residue[1:])
    return before == b"%" and len(residue) == 2 and all(c in _HEX_DIGITS for c in residue)
