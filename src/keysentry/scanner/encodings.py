"""The encoded forms of the key marker, and the decoders that run only where one occurs.

A key can sit in a file base64-encoded (Kubernetes Secrets, docker config `auth`, and both at
once; padded or not; on one line or wrapped), hex-encoded, percent-encoded, escaped (`\\uXXXX`,
`\\xXX`, HTML `&#NN;`/`&#xHH;`) wholly or only where a serialiser escapes `-`, `/`, `+`, `=`,
and in UTF-16 text without a byte order mark. Each form of the marker `T3BlbkFJ` is a literal
needle (listed in `needles`) for the multi-pattern search in `detect`; where one hits, a window
of text around it is decoded and searched again, and a match in the decoded bytes is located
back in the window.

Every decoder here is a bulk operation (binascii, bytes.translate, one regex split): the cost
of a window is proportional to its size, whatever the window holds.
"""

from __future__ import annotations

import binascii
import bisect
import codecs
import enum
import functools
import itertools
import re
import warnings
from collections.abc import Callable, Iterator
from typing import NamedTuple

import ahocorasick_rs

from keysentry.scanner import needles
from keysentry.scanner.keys import ALNUM


class Codec(str, enum.Enum):
    BASE64 = "base64"
    HEX = "hex"
    PERCENT = "percent"
    ESCAPE = "escape"
    UTF16LE = "utf-16-le"
    UTF16BE = "utf-16-be"


class Kind(enum.IntEnum):
    """What a needle hit asks for; `detect` has one handler per kind."""

    PLAIN = needles.PLAIN
    BASE64 = needles.BASE64
    HEX = needles.HEX
    ESCAPED = needles.ESCAPED
    UTF16 = needles.UTF16


class Needle(NamedTuple):
    pattern: bytes
    kind: Kind
    phase: int = 0  # base64: where the pattern's first character sits in its 4-character group


class Decoded(NamedTuple):
    """Bytes decoded from a window of a buffer, and how to find where they came from."""

    data: bytes
    codec: Codec
    locate: Callable[[int, int], tuple[int, int]]  # decoded span -> span in the buffer


def _case_variants(text: str) -> list[str]:
    options = [(c.lower(), c.upper()) if c.isalpha() else (c,) for c in text]
    return sorted({"".join(p) for p in itertools.product(*options)})


NEEDLES = tuple(Needle(pattern, Kind(kind), phase) for pattern, kind, phase in needles.TABLE)

# --- base64 -------------------------------------------------------------------------------

_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_BASE64_ALPHABET = ALNUM | frozenset(b"+/")
# URL-safe characters to standard ones, anything else to `/`.
_STRETCH = bytes(
    c if c in _BASE64_ALPHABET else {ord("-"): ord("+"), ord("_"): ord("/")}.get(c, ord("/"))
    for c in range(256)
)


def base64_views(
    buf: bytes,
    lo: int,
    hi: int,
    joined: bool,
    alignments: int,
    lo_index: int,
    stretch: bool = False,
) -> Iterator[Decoded]:
    """`buf[lo:hi]` (a run of base64 characters, maybe over several lines) decoded with its
    4-character groups aligned as each bit of `alignments` says: bit k set, a group may start
    at a character whose index is k modulo 4, counting the characters of `buf` that are not
    line breaks (`lo_index`: that count before `lo`). Counted so, where a group starts does not
    depend on where the value's lines break. `joined`: the lines as one value (wrapped
    base64); else each line as a value of its own. `stretch`: the window may hold anything,
    and whatever is not base64 is read as `/` (it ends a value as a delimiter does)."""
    window = buf[lo:hi]
    if stretch:
        chars = window.translate(_STRETCH)
        for first in range(4):
            if alignments >> (lo_index + first) % 4 & 1:
                yield _decoded_from(chars, first, lo.__add__)
        return
    carriage_returns = b"\r" in window
    if joined:
        chars = window.translate(None, b"\r\n")
        position = _stripped_positions(window, lo, 0)
    elif carriage_returns or b"\n" in window:
        # Each line break becomes `////`: a whole group at the offset where the next line's
        # value starts; it decodes to 0xFF bytes, which end any key, and puts no key bits into
        # the byte after a key's last one (an encoder's padding bits are zeros). Four
        # characters for one or two keep every character's index modulo 4 what it is joined.
        chars = window.replace(b"\r\n", _SEPARATOR) if carriage_returns else window
        chars = chars.replace(b"\n", _SEPARATOR)
        if carriage_returns:
            chars = chars.replace(b"\r", _SEPARATOR)
        position = _stripped_positions(window, lo, len(_SEPARATOR))
    else:
        chars = window
        position = lo.__add__
    urlsafe = b"-" in chars or b"_" in chars
    standard = chars.translate(_TO_STANDARD) if urlsafe else chars
    for first in range(4):
        if alignments >> (lo_index + first) % 4 & 1:
            yield _decoded_from(standard, first, position)


def _decoded_from(chars: bytes, first: int, position: Callable[[int], int]) -> Decoded:
    """Standard-alphabet base64 `chars` decoded in groups from index `first`."""
    body = chars[first:]
    if len(body) % 4 == 1:
        body = body[:-1]
    data = binascii.a2b_base64(body + b"=" * (-len(body) % 4))
    return Decoded(data, Codec.BASE64, _base64_locator(first, len(chars), position))


_SEPARATOR = b"////"


def _base64_locator(
    first: int, length: int, position: Callable[[int], int]
) -> Callable[[int, int], tuple[int, int]]:
    def locate(start: int, end: int) -> tuple[int, int]:
        # Byte i is carried by characters 4*(i//3) + i%3 and the one after it.
        head = first + start // 3 * 4 + start % 3
        last = first + (end - 1) // 3 * 4 + (end - 1) % 3 + 1
        return position(head), position(min(last, length - 1)) + 1

    return locate


_LINE_BREAKS = re.compile(rb"\r\n|\n|\r")


_NOT_BASE64_TO_NUL = bytes(c if c in _BASE64_ALPHABET or c in b"-_" else 0 for c in range(256))


class Pieces(NamedTuple):
    """Values of a window to read one by one (`base64_pieces`): each, where each starts in the
    buffer (listed only when a match needs locating), how many characters of the first are
    before the window (`lead`), and whether the first starts at the window's start and the
    last ends at its end (only those can be cut)."""

    values: list[bytes]
    starts: Callable[[], list[int]]
    lead: int
    at_ends: tuple[bool, bool]


def long_runs(buf: bytes, lo: int, hi: int, lead: int, least: int) -> Pieces:
    """The runs of base64 characters in `buf[lo:hi]` long enough (`least`) to hold a key:
    values in fields or one a line, lines of wrapped base64. `lead`: how many characters of
    the run `lo` is in come before it (0 when `lo` starts a run, or when that run is not to be
    read here). Bulk operations only (split, compress), however many runs there are."""
    runs = buf[lo:hi].translate(_NOT_BASE64_TO_NUL).split(b"\0")
    keep = list(map(least.__le__, map(len, runs)))
    if lo > 0 and runs[0] and _NOT_BASE64_TO_NUL[buf[lo - 1]]:  # a run from before `lo`
        keep[0] = lead > 0 and lead + len(runs[0]) >= least
    if not keep[0]:
        lead = 0

    def starts() -> list[int]:
        every = itertools.accumulate(map((1).__add__, map(len, runs)), initial=lo)
        return list(itertools.compress(every, keep))

    values = list(itertools.compress(runs, keep))
    return Pieces(values, starts, lead, (keep[0], keep[-1]))


def _line_end(length: int) -> bytes:
    """What follows a piece of `length` characters in `base64_pieces`: `A`s (zero bits) to a
    whole group, then groups of `/`, which decode to 0xFF bytes that end any key, as many as
    make the piece's bytes a multiple of four, so that what the next piece holds starts at the
    same alignment in the decoded bytes as the piece before it, whatever the lengths."""
    filled = length + -length % 4
    groups = -(filled // 4) % 4 or 4
    return b"A" * (filled - length) + _SEPARATOR * groups


_LINE_ENDS = tuple(_line_end(length) for length in range(16))


def base64_pieces(pieces: Pieces) -> Decoded:
    """Each of `pieces` read as a base64 value of its own, with its groups from where it
    starts, whatever the lengths of the pieces before it: each is filled to whole groups. One
    decode for every piece, where reading them in place needs one per alignment of their
    starts; and each piece's bytes start at a multiple of four, so that base64 inside (a value
    encoded twice) is in turn read at one alignment."""
    values = pieces.values
    front = b"A" * (pieces.lead % 4)
    first = len(values[0]) + len(front) if values else 0
    inner = values[1:-1]
    middle = {length & 15 for length in set(map(len, inner))}
    if len(values) > 1 and len(middle) <= 1:
        # Lines of one length but maybe the first and the last (the usual wrapping, a window
        # cut inside a line): one bulk join.
        first_end, last = _LINE_ENDS[first & 15], _LINE_ENDS[len(values[-1]) & 15]
        end = _LINE_ENDS[middle.pop()] if middle else b""
        joined = end.join(inner) + end if inner else b""
        padded = front + values[0] + first_end + joined + values[-1] + last
        ends: list[bytes] = [first_end] + [end] * len(inner) + [last]
    else:
        ends = [_LINE_ENDS[first & 15]] + [_LINE_ENDS[len(value) & 15] for value in values[1:]]
        padded = front + b"".join(itertools.chain.from_iterable(zip(values, ends, strict=True)))
    if b"-" in padded or b"_" in padded:
        padded = padded.translate(_TO_STANDARD)
    data = binascii.a2b_base64(padded)
    mapping: list[list[int]] = []  # filled piece starts, buffer piece starts: made when asked

    def position(index: int) -> int:
        if not mapping:
            lengths = (len(a) + len(b) for a, b in zip(values, ends, strict=True))
            filled = list(itertools.accumulate(lengths, initial=len(front)))
            mapping.extend((filled, pieces.starts()))
        filled, piece_starts = mapping
        piece = max(0, bisect.bisect_right(filled, index) - 1)
        offset = min(max(0, index - filled[piece]), len(values[piece]))
        return piece_starts[piece] + offset

    return Decoded(data, Codec.BASE64, _base64_locator(0, len(padded), position))


_BASE64_AND_LF = bytes(sorted(_BASE64_ALPHABET | frozenset(b"-_\n")))


def interior_width(window: bytes) -> int | None:
    """The length of the lines between a window's first and last line breaks (LF only) when
    they are all one length (the usual wrapping; the first and last lines may be cut short),
    told in one strided pass; None for any other window, or one of fewer than three lines."""
    first = window.find(b"\n")
    second = window.find(b"\n", first + 1)
    if first < 0 or second < 0 or b"\r" in window:
        return None
    breaks = window[first : window.rfind(b"\n") + 1 : second - first]
    if breaks.count(b"\n") == len(breaks) == window.count(b"\n"):
        return second - first - 1
    return None


def regular_lines(
    buf: bytes, lo: int, hi: int, lead: int, least: int
) -> tuple[Decoded, tuple[bool, bool]] | None:
    """`base64_pieces(long_runs(buf, lo, hi, lead, least))` and its pieces' `at_ends`, for a
    window of lines of one length (the usual wrapping; its first and last lines may be cut
    short) at least `least` long, read without listing its lines; None for any other
    window. The same bytes, one bulk replace where the lines would be split and joined."""
    window = buf[lo:hi]
    width = interior_width(window)
    if width is None or width < least or window.translate(None, _BASE64_AND_LF):
        return None
    first_break, last_break = window.find(b"\n"), window.rfind(b"\n")
    middle = window[first_break + 1 : last_break]
    lines = (len(middle) + 1) // (width + 1)
    first, last = window[:first_break], window[last_break + 1 :]
    if lo > 0 and first and _NOT_BASE64_TO_NUL[buf[lo - 1]]:  # a run from before `lo`
        keep_first = lead > 0 and lead + len(first) >= least
    else:
        keep_first = len(first) >= least
    keep_last = len(last) >= least
    end = _LINE_ENDS[width & 15]
    parts = [middle.replace(b"\n", end), end]
    front = b""
    if keep_first:
        front = b"A" * (lead % 4)
        parts[:0] = [front, first, _LINE_ENDS[(len(front) + len(first)) & 15]]
    if keep_last:
        parts += [last, _LINE_ENDS[len(last) & 15]]
    padded = b"".join(parts)
    if b"-" in padded or b"_" in padded:
        padded = padded.translate(_TO_STANDARD)
    # Where each piece starts in `padded` and in `buf`: the lines step by one width each.
    middle_at = sum(map(len, parts[:3])) if keep_first else 0
    step = width + len(end)
    last_at, last_start = middle_at + lines * step, lo + last_break + 1

    def position(index: int) -> int:
        if keep_first and index < middle_at:
            return lo + min(max(0, index - len(front)), len(first))
        if keep_last and index >= last_at:
            return last_start + min(index - last_at, len(last))
        line = min(max(0, (index - middle_at) // step), lines - 1)
        offset = min(max(0, index - middle_at - line * step), width)
        return lo + first_break + 1 + line * (width + 1) + offset

    located = _base64_locator(0, len(padded), position)
    return Decoded(binascii.a2b_base64(padded), Codec.BASE64, located), (keep_first, keep_last)


def _stripped_positions(window: bytes, lo: int, inserted: int) -> Callable[[int], int]:
    """Maps an index in the window with each line break replaced by `inserted` characters to
    its offset in the buffer; the line breaks are listed only when a match asks."""
    breaks: list[tuple[int, int]] = []  # (index where a break's replacement ends, shift there)
    listed = False

    def position(index: int) -> int:
        nonlocal listed
        if not listed:
            shift = 0
            for found in _LINE_BREAKS.finditer(window):
                shift += found.end() - found.start() - inserted
                breaks.append((found.end() - shift, shift))
            listed = True
        at = bisect.bisect_right(breaks, (index, 1 << 62)) - 1
        return lo + index + (breaks[at][1] if at >= 0 else 0)

    return position


# --- hex ----------------------------------------------------------------------------------


def hex_views(buf: bytes, lo: int, hi: int) -> Iterator[Decoded]:
    """`buf[lo:hi]` (hex digits) decoded from each of the two digit alignments."""
    for first in (lo, lo + 1):
        last = first + (hi - first) // 2 * 2
        data = bytes.fromhex(buf[first:last].decode("ascii"))
        yield Decoded(data, Codec.HEX, _strided_locator(first, 2))


def _strided_locator(first: int, width: int) -> Callable[[int, int], tuple[int, int]]:
    def locate(start: int, end: int) -> tuple[int, int]:
        return first + width * start, first + width * end

    return locate


# --- UTF-16 -------------------------------------------------------------------------------

# A code unit whose other byte is not NUL is not ASCII: it decodes to 0xFF, never a key byte.
_NONZERO_TO_FF = bytes([0] + [0xFF] * 255)


def utf16_views(buf: bytes, lo: int, hi: int, odd_too: bool = False) -> Iterator[Decoded]:
    """`buf[lo:hi]` read as UTF-16 LE and BE in code units that start at even offsets of
    `buf` (the way a file that starts at offset 0 is), one byte per code unit: ASCII as
    itself, anything else as 0xFF; with `odd_too`, also from odd offsets where neither even
    reading is all ASCII (text inside binary data), or where they leave out the buffer's
    last byte.

    ASCII text in UTF-16 reads the same in LE from one offset and in BE from the next, but
    at its ends: at an odd offset, a little-endian string's first character is merged with
    the byte before it when read as BE from even offsets, and a big-endian string's last
    character with the byte after it when read as LE; each is whole only when read from odd
    offsets (`detect` keeps from those readings only such keys)."""
    # Units from `lo` pair each byte of one stride with the next byte of the other, units from
    # `lo + 1` the other way round: each stride is converted once and read by both.
    stretch = buf[lo:hi]
    ahead, behind = _Stride.of(stretch[0::2]), _Stride.of(stretch[1::2])
    from_lo = ahead.head(behind.length), behind
    from_next = behind.head(max(ahead.length - 1, 0)), ahead.tail()
    even, odd = (from_lo, from_next) if lo % 2 == 0 else (from_next, from_lo)
    start = lo + lo % 2
    readings = list(_utf16_readings(*even, start))
    yield from readings
    if not odd_too:
        return
    mixed = all(_NOT_ASCII in reading.data for reading in readings)
    lone_end = hi >= len(buf) and (hi - start) % 2  # a last byte the even readings leave out
    if mixed or lone_end:
        yield from _utf16_readings(*odd, lo if lo % 2 else lo + 1)


class _Stride(NamedTuple):
    """Every other byte of a stretch as one big-endian integer (`value`), and as one that is
    0xFF where the byte is not NUL (`set`)."""

    length: int
    value: int
    set: int

    @classmethod
    def of(cls, raw: bytes) -> _Stride:
        mask = raw.translate(_NONZERO_TO_FF)
        return cls(len(raw), int.from_bytes(raw, "big"), int.from_bytes(mask, "big"))

    def head(self, count: int) -> _Stride:
        """The first `count` bytes (shifted out of the integers, not converted again)."""
        cut = 8 * (self.length - count)
        return _Stride(count, self.value >> cut, self.set >> cut)

    def tail(self) -> _Stride:
        """All but the first byte."""
        length = max(self.length - 1, 0)
        keep = (1 << 8 * length) - 1
        return _Stride(length, self.value & keep, self.set & keep)


def _utf16_readings(first: _Stride, second: _Stride, offset: int) -> Iterator[Decoded]:
    """Units of a `first` and a `second` byte, from `offset`: read as LE (the first byte is
    the character where the second is NUL), then as BE."""
    locate = _strided_locator(offset, 2)
    data = (first.value | second.set).to_bytes(first.length, "big")
    yield Decoded(data, Codec.UTF16LE, locate)
    data = (second.value | first.set).to_bytes(first.length, "big")
    yield Decoded(data, Codec.UTF16BE, locate)


# --- escapes ------------------------------------------------------------------------------


# One token is one decoded byte: `%XX`, `\xXX`, `\uXXXX`, the one-letter escapes, and HTML
# numeric references of up to three decimal or two hex digits.
@functools.cache
def _token() -> re.Pattern[bytes]:
    return re.compile(
        rb"(%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}|\\[nrtbf/\\\"']"
        rb"|&#[0-9]{1,3};|&#[xX][0-9A-Fa-f]{1,2};)"
    )


_SIMPLE = {b"n": 10, b"r": 13, b"t": 9, b"b": 8, b"f": 12, b"/": 47, b"\\": 92, b'"': 34, b"'": 39}
_NOT_ASCII = b"\xff"


@functools.cache
def _token_table() -> dict[bytes, bytes]:
    table: dict[bytes, bytes] = {}
    for value in range(256):
        raw = bytes((value,))
        for digits in _case_variants(f"{value:02x}"):
            table[f"%{digits}".encode()] = raw
            table[f"\\x{digits}".encode()] = raw
            table[f"\\u00{digits}".encode()] = raw
    for value in range(128):
        raw = bytes((value,))
        for width in range(len(str(value)), 4):
            table[f"&#{value:0{width}d};".encode()] = raw
        for width in range(len(f"{value:x}"), 3):
            for digits in _case_variants(f"{value:0{width}x}"):
                table[f"&#x{digits};".encode()] = raw
                table[f"&#X{digits};".encode()] = raw
    for letter, value in _SIMPLE.items():
        table[b"\\" + letter] = bytes((value,))
    return table


# An escaped window can hold a key that the plain search did not find only if it holds the
# key's start escaped: `sk` and its `-` escaped (a serialiser that escapes `-` escapes the one
# after `sk`: `sk\\u002d`, `sk&#45;`), or every character escaped from `s` on; windows without
# one are not decoded.
_ESCAPED_SK = (
    b"%73%6",
    b"\\x73\\x6",
    b"\\u0073\\u006",
    b"&#115;&#107;",
    b"&#x73;&#x6",
    b"&#X73;&#X6",
)


# An automaton with the length of its longest pattern, for `_holds`.
_Search = tuple[ahocorasick_rs.BytesAhoCorasick, int]


def _search_for(patterns: set[bytes]) -> _Search:
    automaton = ahocorasick_rs.BytesAhoCorasick(sorted(patterns), matchkind=needles.LEFTMOST)
    return automaton, max(map(len, patterns))


def _escape_forms(chars: bytes) -> set[bytes]:
    """Every escape of each of `chars`: `%2D`, `\\x41`, `\\u0061` and `&#x5f;` in either case,
    `&#45;` and `&#045;`."""
    forms: set[str] = set()
    for char in chars:
        for digits in _case_variants(f"{char:02x}"):
            forms |= {
                f"%{digits}",
                f"\\x{digits}",
                f"\\u00{digits}",
                f"&#x{digits};",
                f"&#X{digits};",
            }
        forms |= {f"&#{char};", f"&#0{char};"}
    return {form.encode() for form in forms}


@functools.cache
def _escaped_sk() -> _Search:
    return _search_for(set(_ESCAPED_SK))


# Escapes are looked for in slices of a window that grow from the first size to the last, so
# that the search stops soon after the first and a window full of them lists few of them.
_FIRST_ESCAPE_SLICE, _LAST_ESCAPE_SLICE = 64, 1 << 12


def _holds(search: _Search, window: bytes) -> bool:
    """Whether `window` holds one of the search's patterns."""
    automaton, longest = search
    view = memoryview(window)
    start, size = 0, _FIRST_ESCAPE_SLICE
    while True:
        if automaton.find_matches_as_indexes(view[start : start + size]):
            return True
        if start + size >= len(window):
            return False
        start += size - longest + 1
        size = min(4 * size, _LAST_ESCAPE_SLICE)


# What a key starts with once a base64 layer is peeled off: `sk-` plainly, behind a partial
# escape (`sk\u002d`, `sk%2D`, `sk&#45;`), wholly escaped, hex-encoded, in UTF-16.
_KEY_STARTS = (
    b"sk-",
    b"sk\\",
    b"sk%",
    b"sk&",
    *_ESCAPED_SK,
    b"736b2d",
    b"736B2D",
    "sk-".encode("utf-16-le"),
    "sk-".encode("utf-16-be"),
)


@functools.cache
def _base64_key_start() -> _Search:
    """The base64 forms of each key start, and the base64 forms of those (a value encoded
    twice): a key encoded in base64 holds one of them whole, whatever its offset, so a
    window of base64 without one holds no key. None holds `+` or `/`, so an escaped one is
    escaped nowhere."""
    once = {form for start in _KEY_STARTS for form, _ in needles.base64_forms(start)}
    twice = {form for start in once for form, _ in needles.base64_forms(start)}
    return _search_for(once | twice)


def could_hold_base64_key(window: bytes) -> bool:
    """Whether a window of base64 (maybe wrapped, maybe values among other text) could hold
    an encoded key: it holds the encoded form of a key's start, as it is or with its line
    breaks taken out (a line break can fall inside that form)."""
    search = _base64_key_start()
    if _holds(search, window):
        return True
    has_breaks = b"\n" in window or b"\r" in window
    return has_breaks and _holds(search, window.translate(None, b"\r\n"))


def escaped_key_families(window: bytes) -> tuple[EscapeFamily, ...]:
    """The kinds of escape in which `window` holds a key's start (see `_ESCAPED_SK`): only
    those are decoded."""
    if not _may_hold_key_start(window):
        return ()
    return tuple(f for f in FAMILIES if f.holds_key_start(window))


def escaped_base64_families(window: bytes) -> tuple[EscapeFamily, ...]:
    """Base64 with its punctuation escaped (a URL parameter, PHP's JSON) holds no `sk` to
    look for: an escape of its punctuation is what it holds, or a key's start."""
    keys = _may_hold_key_start(window)
    return tuple(
        f for f in FAMILIES if f.holds_punctuation(window) or (keys and f.holds_key_start(window))
    )


def _may_hold_key_start(window: bytes) -> bool:
    # `sk` plainly or escaped first: most windows have neither, and telling so is fastest
    # with the fewest patterns.
    return b"sk" in window or _holds(_escaped_sk(), window)


_ALNUM_BYTES = bytes(sorted(ALNUM))


def escapes_some_alphanumerics(span: bytes) -> bool:
    """Whether `span` writes some of its letters or digits plainly and others as escapes
    (`s\\u006b-…`): no serialiser writes a key so (they escape every character, or only
    punctuation), and random text with escapes in it does; such a span is read as no key."""
    parts = _token().split(span)
    plain = b"".join(parts[0::2])
    if len(plain.translate(None, _ALNUM_BYTES)) == len(plain):
        return False
    table = _token_table()
    return any(table.get(token, _NOT_ASCII)[0] in ALNUM for token in parts[1::2])


class Unescaped(NamedTuple):
    """An escaped window decoded in bulk (`fast`), and the token decoder that can locate a
    match in it (`by_tokens`, run only when a match needs locating)."""

    fast: bytes
    codec: Codec
    by_tokens: Callable[[], Decoded]


def unescaped(
    buf: bytes, lo: int, hi: int, families: tuple[EscapeFamily, ...], exact: bool = False
) -> Unescaped:
    """`buf[lo:hi]` read for keys escaped in each of `families` (see `_in_bulk`), or only
    by the token decoder if `exact`."""
    window = buf[lo:hi]

    def by_tokens() -> Decoded:
        return _unescape_by_tokens(window, lo)

    fast = None if exact else _in_bulk(window)
    if fast is None:
        view = by_tokens()
        return Unescaped(view.data, view.codec, lambda: view)
    codec = families[0].codec if len(families) == 1 else Codec.ESCAPE
    return Unescaped(fast, codec, by_tokens)


def _in_bulk(window: bytes) -> bytes | None:
    """A C-speed reading of `window`'s escapes, exactly as the token decoder reads them, or
    None where it could read otherwise (HTML references, the corners below): the token
    decoder reads those windows, as it locates every match.

    Backslash escapes are decoded first, then percent-escapes; neither may read what the
    other decoded, as the token decoder does not, so a window where one could (an escape of
    `%`, a `%` that a backslash follows within its escape) is left to the token decoder.
    Reading a corner otherwise would not do even as a filter: it can glue a key to what it
    reads there (`%4\\x31sk-…` reads `%41sk-…` by tokens, a key after an escape's tail)."""
    if b"&#" in window:
        return None
    has_percent, has_backslash = b"%" in window, b"\\" in window
    if has_percent and has_backslash:
        if _reads_across(window):
            return None
        decoded = _backslash_in_bulk(window)
        return None if decoded is None else _percent_in_bulk(decoded)
    if has_percent:
        return _percent_in_bulk(window)
    return _backslash_in_bulk(window) if has_backslash else window


def _reads_across(window: bytes) -> bool:
    """Whether one kind of escape could read what the other decoded: an escape of `%`, or a
    `%` that a backslash follows within its escape (`%\\x34`, `%4\\x31`)."""
    if b"\\x25" in window or b"\\u0025" in window:
        return True
    classes = window.translate(_HEX_AS_ZERO)
    return b"%\\" in classes or b"%0\\" in classes


# Every hex digit as `0`, to look for a `%` that a backslash follows within an escape.
_HEX_AS_ZERO = bytes.maketrans(b"0123456789abcdefABCDEF", b"0" * 22)


def _percent_in_bulk(window: bytes) -> bytes | None:
    """Percent-escapes decoded as quoted-printable, which is percent-encoding with `=` for
    `%`, the window's own `=` written as `=3D` (a tail cut inside an escape kept as it is);
    None if a `%` starts no escape (the lengths tell): quoted-printable reads one otherwise
    (`==` as `=`; before a line break, as a soft line break that drops both)."""
    if not _percent_escape().search(window):
        return window
    cut = window.rfind(b"%", max(0, len(window) - 2))  # a window can end inside an escape
    body, tail = (window, b"") if cut < 0 else (window[:cut], window[cut:])
    if b"%\n" in body or b"%\r" in body:
        return None
    quoted = body.replace(b"=", b"=3D")
    plain = binascii.a2b_qp(quoted.replace(b"%", b"="))
    if len(quoted) - len(plain) != 2 * (body.count(b"%") + body.count(b"=")):
        return None
    return plain + tail


@functools.cache
def _percent_escape() -> re.Pattern[bytes]:
    return re.compile(rb"%[0-9A-Fa-f]{2}")


@functools.cache
def _wide_escape() -> re.Pattern[bytes]:
    return re.compile(rb"\\u[0-9A-Fa-f]{4}")


def _backslash_in_bulk(window: bytes) -> bytes | None:
    """Backslash escapes decoded by codecs.escape_decode; None where it reads an escape that
    the token decoder does not (octal, `\\a`, a line continuation: a Windows path in JSON,
    `C:\\\\apps`, holds one). A `\\x` or `\\u00` without its two hex digits (as where two
    views meet in a batch, one cut inside an escape) fails it: its backslash is doubled, so
    that it reads as written, and the window decoded again."""
    if b"\\!" in window.translate(_BULK_ONLY_CLASSES):
        return None
    # A window can end inside an escape: that tail is kept as it is. A backslash there that
    # ends an even run of them is the second of an escaped backslash.
    cut = window.rfind(b"\\", max(0, len(window) - 6))
    if cut >= 0 and (_run_of_backslashes(window, cut) % 2 == 0 or _token().match(window, cut)):
        cut = -1  # a whole escape
    body, tail = (window, b"") if cut < 0 else (window[:cut], window[cut:])
    decoded = _escape_decode(body)
    if decoded is None:
        decoded = _escape_decode(_unfinished_escape().sub(b"\\\\\\\\", body))
    return None if decoded is None else decoded + tail


def _escape_decode(body: bytes) -> bytes | None:
    escaped = body.replace(b"\\u00", b"\\x").replace(b"\\/", b"/")
    # Escapes of characters above 0xFF: one byte, not ASCII. (A `u1234` after an escaped
    # backslash is no escape: a window that holds one keeps them as written, a corner.)
    if b"\\u" in escaped and b"\\\\u" not in escaped:
        escaped = _wide_escape().sub(b"\\\\xff", escaped)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return codecs.escape_decode(escaped)[0]
    except ValueError:
        return None


@functools.cache
def _unfinished_escape() -> re.Pattern[bytes]:
    return re.compile(rb"\\(?=x(?![0-9A-Fa-f]{2})|u00(?![0-9A-Fa-f]{2}))")


class EscapeFamily(NamedTuple):
    """One kind of escape: the byte its escapes start with, the codec its matches report,
    and the escapes that a window must hold to be decoded for it."""

    lead: bytes
    codec: Codec

    def holds_key_start(self, window: bytes) -> bool:
        """Whether `window` holds a key's start escaped this way. How one begins (`sk` and
        the lead, or `s` escaped) is looked for first, with a few fast scans: the full
        search would look at every `sk` or lead in a window of other escapes."""
        if self.lead not in window:
            return False
        begins = any(start in window for start in _starts_escaped(self.lead))
        return begins and _holds(_key_starts_in(self.lead), window)

    def holds_punctuation(self, window: bytes) -> bool:
        """Whether `window` holds base64's or a key's punctuation escaped this way."""
        return self.lead in window and _holds(_punctuation_in(self.lead), window)


@functools.cache
def _starts_escaped(lead: bytes) -> tuple[bytes, ...]:
    return (b"sk" + lead, *(start for start in _ESCAPED_SK if start.startswith(lead)))


@functools.cache
def _key_starts_in(lead: bytes) -> _Search:
    forms = {b"sk" + dash for dash in _escape_forms(b"-")} | set(_ESCAPED_SK)
    return _search_for({form for form in forms if form.removeprefix(b"sk").startswith(lead)})


@functools.cache
def _punctuation_in(lead: bytes) -> _Search:
    """Every escape of base64's and keys' punctuation (`+`, `/`, `=`, `-`, `_`); JSON's `\\/`."""
    forms = _escape_forms(b"+/=-_") | {b"\\/"}
    return _search_for({form for form in forms if form.startswith(lead)})


FAMILIES = (
    EscapeFamily(b"\\", Codec.ESCAPE),
    EscapeFamily(b"%", Codec.PERCENT),
    EscapeFamily(b"&", Codec.ESCAPE),
)


# A table that writes a window as backslashes, the letters after one in escapes that
# codecs.escape_decode reads and the token decoder does not (`!`), and other bytes.
_BULK_ONLY_CLASSES = bytes(
    ord("\\") if b == ord("\\") else ord("!") if b in b"av01234567\r\n" else ord(".")
    for b in range(256)
)


def _run_of_backslashes(window: bytes, end: int) -> int:
    """How many backslashes run up to `window[end]`, a backslash (looked for near it first:
    copying the whole window for it would cost as much as decoding it)."""
    near = window[max(0, end - 63) : end + 1]
    run = len(near) - len(near.rstrip(b"\\"))
    if run == len(near) and end >= 64:  # the run goes further back
        whole = window[: end + 1]
        run = len(whole) - len(whole.rstrip(b"\\"))
    return run


def _unescape_by_tokens(window: bytes, lo: int) -> Decoded:
    parts = _token().split(window)
    tokens = parts[1::2]
    parts[1::2] = map(_token_table().get, tokens, itertools.repeat(_NOT_ASCII))
    data = b"".join(parts)
    codec = Codec.PERCENT if all(t[:1] == b"%" for t in tokens) else Codec.ESCAPE

    @functools.cache
    def starts() -> tuple[list[int], list[int]]:
        """Where piece k starts in the data and in the window (built only to locate a match:
        literal pieces map byte for byte, a token maps to its whole width)."""
        decoded = [0, *itertools.accumulate(map(len, parts))]
        encoded_lengths = list(map(len, parts))
        encoded_lengths[1::2] = map(len, tokens)
        return decoded, [0, *itertools.accumulate(encoded_lengths)]

    def locate(start: int, end: int) -> tuple[int, int]:
        decoded_starts, encoded_starts = starts()
        first = bisect.bisect_right(decoded_starts, start) - 1
        last = bisect.bisect_right(decoded_starts, end - 1) - 1
        head = encoded_starts[first] + (start - decoded_starts[first] if first % 2 == 0 else 0)
        if last % 2 == 0:
            tail = encoded_starts[last] + end - decoded_starts[last]
        else:
            tail = encoded_starts[last + 1]
        return lo + head, lo + tail

    return Decoded(data, codec, locate)
