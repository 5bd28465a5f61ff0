"""The encoded forms of the key marker, and the decoders that run only where one occurs.

A key can sit in a file base64-encoded (Kubernetes Secrets, docker config `auth`, and both at
once), hex-encoded, percent-encoded or escaped (`\\uXXXX`, `\\xXX`). Each form of the marker
`T3BlbkFJ` is a literal needle for the one multi-pattern search in `detect`; when a needle hits,
the run of encoded text around it is decoded and handed back to `detect`, with a map from each
decoded byte to where it came from.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterator
from typing import NamedTuple

from keysentry.scanner.keys import MARKER


class Codec(str, enum.Enum):
    BASE64 = "base64"
    HEX = "hex"
    PERCENT = "percent"
    ESCAPE = "escape"


class Needle(NamedTuple):
    pattern: bytes
    codec: Codec | None  # None: the plain marker
    phase: int = 0  # base64: where the pattern's first character sits in its 4-character group


class Decoded(NamedTuple):
    data: bytes
    origins: list[int]  # origins[i]: offset in the encoded buffer that decoded byte i came from
    end: int  # where the decoded run ends in the encoded buffer


def _base64_forms(text: bytes) -> Iterator[tuple[bytes, int]]:
    """The characters of base64(text) that do not depend on the bytes around it, for each of
    the three alignments `text` can have, with the phase of their first character."""
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + text)
        first = -(-8 * shift // 6)  # the first character made only of `text`'s bits
        last = 8 * (shift + len(text)) // 6
        stable = encoded[first:last]
        yield stable, first % 4
        urlsafe = stable.translate(bytes.maketrans(b"+/", b"-_"))
        if urlsafe != stable:
            yield urlsafe, first % 4


def _build_needles() -> tuple[Needle, ...]:
    needles = [Needle(MARKER, None)]
    once = list(_base64_forms(MARKER))
    needles += [Needle(p, Codec.BASE64, phase) for p, phase in once]
    # Base64 inside base64: a docker config's `auth` inside a Kubernetes `.dockerconfigjson`.
    needles += [
        Needle(p2, Codec.BASE64, phase2) for p1, _ in once for p2, phase2 in _base64_forms(p1)
    ]
    hex_lower = binascii.hexlify(MARKER)
    needles += [Needle(hex_lower, Codec.HEX), Needle(hex_lower.upper(), Codec.HEX)]
    # `T3B` is all digits once escaped; the fourth character's hex digit may be either case.
    needles.append(Needle(b"%54%33%42%6", Codec.PERCENT))
    needles.append(Needle(b"\\u0054\\u0033\\u0042\\u006", Codec.ESCAPE))
    needles.append(Needle(b"\\x54\\x33\\x42\\x6", Codec.ESCAPE))
    unique = {n.pattern: n for n in needles}
    return tuple(unique.values())


NEEDLES = _build_needles()

# How far an encoded key can reach on either side of its marker: the longest key is about
# 256 characters, times each encoding's growth, plus slack for line breaks.
_REACH = {Codec.BASE64: 640, Codec.HEX: 640, Codec.PERCENT: 960, Codec.ESCAPE: 1920}

_RUNS = {
    Codec.BASE64: re.compile(rb"[A-Za-z0-9+/_=-]*"),
    Codec.HEX: re.compile(rb"[0-9A-Fa-f]*"),
    Codec.PERCENT: re.compile(rb"[A-Za-z0-9._~%+-]*"),
    Codec.ESCAPE: re.compile(rb"[A-Za-z0-9_\\-]*"),
}

# Base64 wrapped in lines (`base64` wraps at 76 columns) is tried only when the line alone
# holds no key: letters after a line break would otherwise be decoded as part of the value.
_WRAPPED_BASE64 = re.compile(rb"[A-Za-z0-9+/_=\r\n-]*")

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("\\"): 92, ord("/"): 47}


def _run_around(
    buf: bytes, start: int, end: int, run: re.Pattern[bytes], reach: int
) -> tuple[int, int]:
    """The run of `run`'s characters that contains buf[start:end], at most `reach` wide."""
    left = buf[max(0, start - reach) : start][::-1]
    left_len = run.match(left)
    right = run.match(buf, end, end + reach)
    assert left_len is not None and right is not None  # `*` always matches
    return start - left_len.end(), right.end()


def decodings_around(buf: bytes, hit: int, needle: Needle) -> Iterator[Decoded]:
    """The ways to decode the encoded run around a needle hit at `hit`, best first."""
    codec = needle.codec
    assert codec is not None
    end = hit + len(needle.pattern)
    lo, hi = _run_around(buf, hit, end, _RUNS[codec], _REACH[codec])
    if codec is Codec.BASE64:
        for first_lo, first_hi in ((lo, hi), _run_around(buf, hit, end, _WRAPPED_BASE64, 800)):
            decoded = _decode_base64(buf, first_lo, first_hi, hit, needle.phase)
            if decoded is not None:
                yield decoded
    elif codec is Codec.HEX:
        first = lo + (hit - lo) % 2
        last = first + (hi - first) // 2 * 2
        data = bytes.fromhex(buf[first:last].decode("ascii"))
        yield Decoded(data, list(range(first, last, 2)), last)
    else:
        yield _unescape(buf, lo, hi, codec)


def _decode_base64(buf: bytes, lo: int, hi: int, hit: int, phase: int) -> Decoded | None:
    # Line breaks may wrap the encoding (`base64` wraps at 76); keep each character's origin.
    positions = [i for i in range(lo, hi) if buf[i] not in b"\r\n"]
    chars = bytes(buf[i] for i in positions)
    at = positions.index(hit)
    group = at - phase
    # An `=` ends one encoded value; a run may hold several (`a==b==`), so stay inside ours.
    before = chars.rfind(b"=", 0, at)
    base = before + 1
    first = base + (group - base) % 4
    pad = chars.find(b"=", at)
    if pad < 0:
        stop = first + (len(chars) - first) // 4 * 4
    else:  # up to the end of the group that holds the padding
        stop = min(len(chars), first + (pad - first) // 4 * 4 + 4)
    body = chars[first:stop].rstrip(b"=").translate(bytes.maketrans(b"-_", b"+/"))
    try:
        data = base64.b64decode(body + b"=" * (-len(body) % 4))
    except binascii.Error:
        return None
    origins = [positions[first + i // 3 * 4] for i in range(len(data))]
    end = positions[min(stop, len(positions)) - 1] + 1
    return Decoded(data, origins, end)


def _unescape(buf: bytes, lo: int, hi: int, codec: Codec) -> Decoded:
    out = bytearray()
    origins: list[int] = []
    i = lo
    while i < hi:
        c = buf[i]
        width, value = 1, bytes((c,))
        if codec is Codec.PERCENT and c == 0x25 and _is_hex(buf[i + 1 : i + 3], 2):
            width, value = 3, bytes((int(buf[i + 1 : i + 3], 16),))
        elif codec is Codec.ESCAPE and c == 0x5C and i + 1 < hi:
            kind = buf[i + 1]
            if kind == ord("u") and _is_hex(buf[i + 2 : i + 6], 4):
                width, value = 6, chr(int(buf[i + 2 : i + 6], 16)).encode("utf-8", "replace")
            elif kind == ord("x") and _is_hex(buf[i + 2 : i + 4], 2):
                width, value = 4, bytes((int(buf[i + 2 : i + 4], 16),))
            elif kind in _SIMPLE_ESCAPES:
                width, value = 2, bytes((_SIMPLE_ESCAPES[kind],))
        out += value
        origins += [i] * len(value)
        i += width
    return Decoded(bytes(out), origins, hi)


def _is_hex(chunk: bytes, width: int) -> bool:
    return len(chunk) == width and all(c in _HEX_DIGITS for c in chunk)
