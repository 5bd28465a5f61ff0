"""The encoded forms of the key marker, and the decoders that run only where one occurs.

A key can sit in a file base64-encoded (Kubernetes Secrets, docker config `auth`, and both at
once; padded or not; on one line or wrapped), hex-encoded, percent-encoded, escaped (`\\uXXXX`,
`\\xXX`, HTML `&#NN;`/`&#xHH;`) wholly or only where a serialiser escapes `-`, `/`, `+`, `=`,
and in UTF-16 text without a byte order mark. Each form of the marker `T3BlbkFJ` is a literal
needle (listed in `needles`) for the multi-pattern search in `detect`; where one hits, a window
of text around it is decoded and searched again, and a match in the decoded bytes is located
back in the window.

Every decoder here is a bulk operation (binascii, codecs, bytes.translate, expat, one regex
split): the cost of a window is proportional to its size, whatever the window holds.
"""

from __future__ import annotations

import binascii
import bisect
import codecs
import enum
import functools
import itertools
import re
import string
import warnings
from collections.abc import Callable, Iterator
from typing import NamedTuple

import ahocorasick_rs

from keysentry.scanner import needles
from keysentry.scanner.keys import ALNUM, MIN_KEY_LENGTH


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
    # UTF-16 read one way where the other way was left out (see utf16_views): that reading,
    # which reports a match it would find too, and where it reads this one's first
    # character.
    shared: tuple[Decoded, int] | None = None
    # A reading with its long stretches of unread units cut short (see _squeezed): the
    # reading whole, and where a position of this one is in it.
    squeezed: tuple[Decoded, Callable[[int], int]] | None = None
    # Whether encodings inside it are decoded too, or only plain keys looked for (see _one_of).
    deeper: bool = True

    def report(self, start: int, end: int) -> tuple[Codec, tuple[int, int]]:
        """The codec a match at [start, end) reports, and its span in the buffer."""
        if self.squeezed is not None:  # a match holds no unread unit: it is in one piece
            whole, position = self.squeezed
            return whole.report(position(start), position(end - 1) + 1)
        if self.shared is not None:
            # Reported by the other reading where it reads the match as this one does, and
            # what decides whether a key stands there (whether a key character is beside
            # it; an escape before it, `%3Dsk-…`), so that it would find it too.
            other, shift = self.shared
            at, to = start + shift, end + shift
            if (
                at >= 0
                and other.data[at:to] == self.data[start:end]
                and _beside(other.data, at, to) == _beside(self.data, start, end)
            ):
                return other.codec, other.locate(at, to)
        return self.codec, self.locate(start, end)


# The characters before a key that decide whether it stands: an escape (`\\u0022`) and the
# character before that; key characters and escape leads as they are, others all alike.
_BESIDE = len(b"\\u0022") + 1
_BESIDE_CLASSES = bytes(c if c in ALNUM or c in b"-_\\%" else ord(".") for c in range(256))


def _beside(data: bytes, start: int, end: int) -> tuple[bytes, bytes]:
    """What decides whether a key at [start, end) stands, as classes: the characters right
    before it up to one that is neither a key character nor an escape's lead, and the
    character after it."""
    before = data[max(0, start - _BESIDE) : start].translate(_BESIDE_CLASSES)
    cut = before.rfind(b".")
    return before if cut < 0 else before[cut:], data[end : end + 1].translate(_BESIDE_CLASSES)


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


def utf16_views(buf: bytes, lo: int, hi: int, odd_too: bool = False) -> list[Decoded]:
    """`buf[lo:hi]` read as UTF-16 LE and BE in code units that start at even offsets of
    `buf` (the way a file that starts at offset 0 is), one byte per code unit: ASCII as
    itself, anything else as 0xFF; with `odd_too`, also from odd offsets where neither even
    reading is all ASCII (text inside binary data), or where they leave out the buffer's
    last byte.

    ASCII text in UTF-16 reads the same in LE from one offset and in BE from the next, but
    at its ends: at an odd offset, a little-endian string's first character is merged with
    the byte before it when read as BE from even offsets, and a big-endian string's last
    character with the byte after it when read as LE; each is whole only when read from odd
    offsets (`detect` reports a key both readings find once). Of two such readings, one is
    left out where a key could be whole in it only, or searched for plain keys only (see
    _one_of). Readings from both parities have their long runs of 0xFF cut (_squeezed)."""
    # Units from `lo` pair each byte of one stride with the next byte of the other, units from
    # `lo + 1` the other way round: each stride is converted once and read by both.
    stretch = buf[lo:hi]
    ahead, behind = _Stride.of(stretch[0::2]), _Stride.of(stretch[1::2])
    from_lo = ahead.head(behind.length), behind
    from_next = behind.head(max(ahead.length - 1, 0)), ahead.tail()
    even, odd = (from_lo, from_next) if lo % 2 == 0 else (from_next, from_lo)
    start, odd_start = lo + lo % 2, lo if lo % 2 else lo + 1
    le_even, be_even = _utf16_readings(*even, start)
    if not odd_too:
        return [le_even, be_even]
    mixed = _NOT_ASCII in le_even.data and _NOT_ASCII in be_even.data
    lone_end = hi >= len(buf) and (hi - start) % 2  # a last byte the even readings leave out
    if not (mixed or lone_end):
        return [le_even, be_even]
    le_odd, be_odd = _utf16_readings(*odd, odd_start)
    if lo == 0 or hi >= len(buf):  # a key at an end of the buffer stands in either reading
        kept: list[Decoded | None] = [le_even, be_even, le_odd, be_odd]
    else:
        # LE from even offsets and BE from odd ones read the bytes at even offsets, and the
        # other two the bytes at odd offsets: a character is the even reading's `shift` after.
        shift = (odd_start - start + 1) // 2
        a_even, a_odd = _one_of(le_even, be_odd, shift)
        b_even, b_odd = _one_of(be_even, le_odd, shift - 1)
        kept = [a_even, b_even, b_odd, a_odd]
    # A reading searched for plain keys only costs about what cutting its runs would.
    return [_squeezed(r) if r.deeper else r for r in kept if r is not None]


def _one_of(even: Decoded, odd: Decoded, shift: int) -> tuple[Decoded | None, Decoded | None]:
    """Two readings of one set of characters, the one from even offsets and the one from
    odd offsets, or only one of them where the other holds no key of its own. A run of
    text that both read starts with a character only LE reads and ends with one only BE
    reads (the other reading merges it with a byte beside it); a key that both find is
    reported by the even one (`detect`). Where no run of a reading starts (LE) or ends (BE)
    with two characters that a key, in any encoding, can start or end with, that reading
    finds no key the other does not: only the other is read, and a match in the odd one
    that the even one would find too is reported by the even one (`Decoded.report`)."""
    if not _may_hold_its_own(odd):
        return even, None
    if not _may_hold_its_own(even):
        return None, odd._replace(shared=(even, shift))
    # Both can: the big-endian one is searched for plain keys only (what is claimed in binary
    # data), so that the text both read is decoded through its escapes once, not twice, by the
    # little-endian one (Windows writes UTF-16 LE). Where that one is the odd one, a match in
    # it that the even one reads alike is still reported by the even one.
    if even.codec is Codec.UTF16BE:
        return even._replace(deeper=False), odd._replace(shared=(even, shift))
    return even, odd._replace(deeper=False)


def _may_hold_its_own(reading: Decoded) -> bool:
    """Whether a run of `reading` starts (LE) or ends (BE) with two characters a key can
    start or end with; a run is what the reading reads between units it does not (0xFF)."""
    classes = reading.data.translate(_RUN_ENDS)
    return _RUN_END_OF[reading.codec].search(classes) is not None


# The regular expression module finds these in class strings full of `k` faster than
# `bytes.find`, whose skips are short when the pattern's letters are everywhere.
_RUN_END_OF = {
    Codec.UTF16LE: re.compile(b"Fkk"),  # a run that starts with two of them
    Codec.UTF16BE: re.compile(b"kkF"),  # a run that ends with two of them
}


# What a key's characters, or its base64, are written with, plainly or escaped (`%2D`,
# `\\u002d`, `&#45;`).
_WRITTEN_IN = frozenset(ALNUM | frozenset(b"-_+/=%\\&#;"))
# What a key, in any encoding, can start or end with, or have beside it there (`\\u0022sk-`;
# a line break of wrapped base64): `k`; a unit that a reading does not read: `F`.
_RUN_ENDS = bytes(
    ord("k") if b in _WRITTEN_IN or b in b"\r\n" else ord("F") if b == 0xFF else ord(".")
    for b in range(256)
)


# A reading of text inside binary data reads every unit of the other parity's text, and of
# the binary data, as 0xFF: about half of it. Before the reading is searched, each run of
# 0xFF as long as _CUT or longer is cut to _GAP and what was left over from the last whole
# _CUT (its parity is kept), so that searching costs about what the text does. _GAP is as
# long as the margin `detect` drops matches within at a cut end (its _EDGE_MARGIN): a match
# is that close to an end of the reading cut short only if it is that close to the same end
# of the reading whole.
_GAP = b"\xff" * 16
_CUT = 2 * _GAP  # runs shorter than this are left alone: cutting them saves little


def _squeezed(reading: Decoded) -> Decoded:
    """`reading` with its long runs of 0xFF cut short (no key or encoded key holds 0xFF:
    what it reads as is unchanged)."""
    pieces = reading.data.split(_CUT)
    if len(pieces) == 1:
        return reading
    lead = _GAP if not pieces[0] else b""
    trail = _GAP if not pieces[-1] else b""
    data = lead + _GAP.join(filter(None, pieces)) + trail

    @functools.cache
    def starts() -> tuple[list[int], list[int]]:
        """Where each piece starts in the reading cut short and in the reading whole."""
        squeezed, whole = [], []
        at, was = len(lead), 0
        for piece in pieces:
            if piece:
                squeezed.append(at)
                whole.append(was)
                at += len(piece) + len(_GAP)
            was += len(piece) + len(_CUT)
        return squeezed, whole

    def position(index: int) -> int:
        squeezed, whole = starts()
        piece = bisect.bisect_right(squeezed, index) - 1
        return whole[piece] + index - squeezed[piece]

    def locate(start: int, end: int) -> tuple[int, int]:
        return reading.locate(position(start), position(end - 1) + 1)

    return Decoded(data, reading.codec, locate, squeezed=(reading, position), deeper=reading.deeper)


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


def _utf16_readings(first: _Stride, second: _Stride, offset: int) -> tuple[Decoded, Decoded]:
    """Units of a `first` and a `second` byte, from `offset`: read as LE (the first byte is
    the character where the second is NUL), and as BE."""
    locate = _strided_locator(offset, 2)
    little = (first.value | second.set).to_bytes(first.length, "big")
    big = (second.value | first.set).to_bytes(first.length, "big")
    return Decoded(little, Codec.UTF16LE, locate), Decoded(big, Codec.UTF16BE, locate)


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


def escaped_key_codec(window: bytes) -> Codec | None:
    """The codec of the keys `window` holds escaped, if it holds a key's start escaped (see
    `_ESCAPED_SK`), else None: only such windows are decoded. A window without a run of key
    characters and escapes as long as the shortest key holds no key, however it reads."""
    if not _may_hold_key_start(window) or _LONG_ESCAPED_RUN not in window.translate(
        _ESCAPED_KEY_CHARACTERS
    ):
        return None
    return _codec_held(lambda family: family.holds_key_start(window))


def escaped_base64_codec(window: bytes) -> Codec | None:
    """The same for base64 with its punctuation escaped (a URL parameter, PHP's JSON), which
    holds no `sk` to look for: an escape of its punctuation is what it holds, or a key's
    start."""
    keys = _may_hold_key_start(window)
    return _codec_held(
        lambda f: f.holds_punctuation(window) or (keys and f.holds_key_start(window))
    )


def _codec_held(holds: Callable[[EscapeFamily], bool]) -> Codec | None:
    """`percent` where only percent-escapes hold what is looked for, `escape` where others
    do (whatever percent-escapes hold then), None where none do."""
    if holds(_BACKSLASHES) or holds(_REFERENCES):
        return Codec.ESCAPE
    return Codec.PERCENT if holds(_PERCENTS) else None


# An escaped key is a run of _WRITTEN_IN at least as long as the key.
_ESCAPED_KEY_CHARACTERS = bytes(int(b in _WRITTEN_IN) for b in range(256))
_LONG_ESCAPED_RUN = b"\1" * MIN_KEY_LENGTH


def _may_hold_key_start(window: bytes) -> bool:
    """Whether an escaped key start begins in `window` in any kind of escape (`sk` and a
    lead, or `s` escaped), in one search rather than one scan each. Without a plain `sk`
    (most windows) only the escaped forms can: the fewest patterns."""
    if b"sk" in window:
        return _holds(_begins(), window)
    return _holds(_escaped_sk(), window)


@functools.cache
def _begins() -> _Search:
    return _search_for({start for lead in (b"\\", b"%", b"&") for start in _starts_escaped(lead)})


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


def unescaped(buf: bytes, lo: int, hi: int, codec: Codec, exact: bool = False) -> Unescaped:
    """`buf[lo:hi]` read in bulk (see `_in_bulk`), its matches reported as `codec`, or only
    by the token decoder if `exact` (or where the bulk reading could differ)."""
    window = buf[lo:hi]

    def by_tokens() -> Decoded:
        return _unescape_by_tokens(window, lo, codec)

    fast = None if exact else _in_bulk(window)
    if fast is None:
        view = by_tokens()
        return Unescaped(view.data, codec, lambda: view)
    return Unescaped(fast, codec, by_tokens)


def _in_bulk(window: bytes) -> bytes | None:
    """A C-speed reading of `window`'s escapes, exactly as the token decoder reads them, or
    None where it could read otherwise (the corners below): the token decoder reads those
    windows, as it locates every match.

    HTML references are decoded first, then backslash escapes, then percent-escapes; none
    may read what another decoded, as the token decoder does not, so a window where one
    could (a reference to `\\` or `%`, or inside an escape; an escape of `%`, a `%` that a
    backslash follows within its escape) is left to the token decoder.
    Reading a corner otherwise would not do even as a filter: it can glue a key to what it
    reads there (`%4\\x31sk-…` reads `%41sk-…` by tokens, a key after an escape's tail)."""
    has_percent, has_backslash = b"%" in window, b"\\" in window
    if b"&#" in window:
        html = _html_in_bulk(window, has_percent or has_backslash)
        if html is None:
            return None
        window = html
    if has_percent and has_backslash:
        if _reads_across(window):
            return None
        decoded = _backslash_in_bulk(window)
        return None if decoded is None else _percent_in_bulk(decoded)
    if has_percent:
        return _percent_in_bulk(window)
    return _backslash_in_bulk(window) if has_backslash else window


def _html_in_bulk(window: bytes, other_escapes: bool) -> bytes | None:
    """HTML numeric references decoded by expat, the C XML parser of the standard library,
    with the window as the text of one element, written so that expat reads it as the
    token decoder does (_xml_text, _expat_text, _as_tokens_read). None where expat refuses
    a reference (to a control character) and, beside escapes of other kinds, where a
    reference is to `\\` or `%` or inside such an escape (`\\x4&#49;`, see _in_bulk). A
    tail cut inside a reference is kept as it is."""
    cut = window.rfind(b"&", max(0, len(window) - _LONGEST_REFERENCE + 1))
    if cut >= 0 and b";" not in window[cut:]:
        body, tail = window[:cut], window[cut:]
    else:
        body, tail = window, b""
    classes = body.translate(_REFERENCE_CLASSES)
    if other_escapes and any(lead in classes for lead in _ESCAPE_LEADS_BEFORE_A_REFERENCE):
        return None
    longer = b"&#hhhh" in classes or b"&#xhhh" in classes  # a `&#` with more digits than a token
    text = _xml_text(body, longer)
    controls = set(body.translate(None, _XML_TEXT))
    decoded = _expat_text(text, controls)
    if decoded is None and not longer:
        # A `&#` that starts no token, or a reference to a control character.
        text = _xml_text(body, True)
        decoded = _expat_text(text, controls)
    data = None if decoded is None else _as_tokens_read(decoded, body, text, controls)
    if data is None or (
        other_escapes
        and (data.count(b"\\") != body.count(b"\\") or data.count(b"%") != body.count(b"%"))
    ):
        return None  # a reference to `\\` or `%`
    return data + tail


def _xml_text(body: bytes, stray: bool) -> bytes:
    """`body` written as XML text that expat reads as the token decoder reads it: `&`, `<`
    and `>` as references where they start none (never markup or entities), a carriage
    return as a reference (expat would read it as a line break); if `stray`, each `&#` that
    starts no token as written (`&#0065;`, `&#;`), looked for only then: expat reads some as
    references and refuses the others."""
    text = body
    if body.count(b"&") != body.count(b"&#"):  # an `&` that starts no reference
        text = text.replace(b"&", b"&amp;").replace(b"&amp;#", b"&#")
    if stray:
        text = _NOT_A_TOKEN.sub(b"&amp;#", text)
    text = text.replace(b"&#X", b"&#x")  # expat knows the lower case only
    return text.replace(b"<", b"&lt;").replace(b">", b"&gt;").replace(b"\r", b"&#13;")


def _expat_text(text: bytes, controls: set[int]) -> str | None:
    """The text of an element whose content is `text` (Latin-1), or None if expat refuses it.
    The `controls` in it, which XML text cannot hold, are read through stand-ins."""
    from xml.parsers import expat

    for control in controls:
        text = text.replace(bytes((control,)), b"&#x%X;" % (_STAND_IN + control))
    parser = expat.ParserCreate("ISO-8859-1")
    parser.buffer_text = True  # the text in one piece, not a call per line or reference
    parser.buffer_size = len(text) + 1
    pieces: list[str] = []
    parser.CharacterDataHandler = pieces.append
    try:
        parser.Parse(b"<a>" + text + b"</a>", True)
    except expat.ExpatError:
        return None
    decoded = "".join(pieces)
    for control in controls:
        decoded = decoded.replace(chr(_STAND_IN + control), chr(control))
    return decoded


def _as_tokens_read(decoded: str, body: bytes, text: bytes, controls: set[int]) -> bytes | None:
    """Expat's reading as bytes, with a reference above 0x7F as 0xFF: expat reads it as that
    character, the token decoder as not ASCII. Where the window also holds such bytes
    written plainly, it is read again with those references to a character above 0xFF."""
    if decoded.isascii():
        return decoded.encode("ascii")
    data = _as_latin_1(decoded)
    plainly = _count_high(body)
    if _count_high(data) == plainly:
        return data  # no reference above 0x7F
    if not plainly:
        return data.translate(_HIGH_TO_FF)
    again = _expat_text(_HIGH_REFERENCE.sub(b"&#x%X;" % _ABOVE_FF, text), controls)
    return None if again is None else _as_latin_1(again)


def _as_latin_1(text: str) -> bytes:
    """`text` as bytes, a character above 0xFF as 0xFF (not ASCII, as the token decoder
    reads an escape of one)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return _ABOVE_LATIN_1.sub("\xff", text).encode("latin-1")


def _count_high(data: bytes) -> int:
    return len(data) - len(data.translate(None, _HIGH))


_LONGEST_REFERENCE = len(b"&#127;")
# A window as the bytes of references (`&`, `#`, `;`, `x` for `x` or `X`, `h` for a hex digit),
# escapes' leads (`\\`, `%`, `u`) and other bytes (`.`).
_REFERENCE_CLASSES = bytes(
    ord("h")
    if chr(b) in string.hexdigits
    else ord("x")
    if b in b"xX"
    else b
    if b in b"&#;\\%u"
    else ord(".")
    for b in range(256)
)
# An escape's lead, and the part of it that a reference after it would complete.
_ESCAPE_LEADS_BEFORE_A_REFERENCE = (
    b"%&",
    b"%h&",
    b"\\&",
    b"\\x&",
    b"\\xh&",
    b"\\u&",
    b"\\uh&",
    b"\\uhh&",
    b"\\uhhh&",
)
# A `&#` that starts no token (`&#0065;`, `&#;`): the token decoder reads it as written.
_NOT_A_TOKEN = re.compile(rb"&#(?!(?:[0-9]{1,3}|[xX][0-9A-Fa-f]{1,2});)")
# A reference above 0x7F (as written in the text given to expat: `x` in lower case).
_HIGH_REFERENCE = re.compile(rb"&#(?:[2-9][0-9]{2}|1[3-9][0-9]|12[89]|x[89A-Fa-f][0-9A-Fa-f]);")
# Bytes that XML text can hold; a control character is read through a stand-in, a character
# of the private use area whose code is _STAND_IN above its own.
_XML_TEXT = b"\t\n\r" + bytes(range(0x20, 0x100))
_STAND_IN = 0xE000
_ABOVE_FF = _STAND_IN + 0xFF
_HIGH = bytes(range(0x80, 0x100))
_HIGH_TO_FF = bytes(range(0x80)) + b"\xff" * 0x80
_ABOVE_LATIN_1 = re.compile("[^\x00-\xff]")


def _reads_across(window: bytes) -> bool:
    """Whether one kind of escape could read what the other decoded: an escape of `%`, or a
    `%` that a backslash follows within its escape (`%\\x34`, `%4\\x31`)."""
    return _holds(_across(), window)


@functools.cache
def _across() -> _Search:
    digits = string.hexdigits.encode()
    return _search_for(
        {b"\\x25", b"\\u0025", b"%\\", *(b"%" + bytes((d,)) + b"\\" for d in digits)}
    )


def _percent_in_bulk(window: bytes) -> bytes | None:
    """Percent-escapes decoded as quoted-printable, which is percent-encoding with `=` for
    `%`, the window's own `=` written as `=3D` (a tail cut inside an escape kept as it is).
    Quoted-printable reads a `=` that starts no escape as itself, but `==` as `=` and one
    before a line break as a soft line break that drops both: where a `%` starts no escape
    (the lengths tell), see _with_lone_percents."""
    if not _percent_escape().search(window):
        return window
    cut = window.rfind(b"%", max(0, len(window) - 2))  # a window can end inside an escape
    body, tail = (window, b"") if cut < 0 else (window[:cut], window[cut:])
    if b"%\n" in body or b"%\r" in body:
        return None
    quoted = body.replace(b"=", b"=3D")
    plain = binascii.a2b_qp(quoted.replace(b"%", b"="))
    if len(quoted) - len(plain) == 2 * (body.count(b"%") + body.count(b"=")):
        return plain + tail
    with_lone = _with_lone_percents(body)
    return None if with_lone is None else with_lone + tail


def _with_lone_percents(body: bytes) -> bytes | None:
    """`body`, which holds a `%` that starts no escape (`100%`), decoded as quoted-printable
    with every `=` it reads, its own and `%3D`, written as the escape of a stand-in byte that
    it holds in neither form: the `=` read then are those `%`. None beside a `%` or `=`,
    which quoted-printable would read with it."""
    if b"%%" in body or b"%=" in body:
        return None
    stand_in = next((b for b in _PERCENT_STAND_INS if b not in body and b"%%%X" % b not in body), 0)
    if not stand_in:
        return None
    escape = b"%%%X" % stand_in
    written = body.replace(b"%3D", escape).replace(b"%3d", escape).replace(b"=", escape)
    plain = binascii.a2b_qp(written.replace(b"%", b"="))
    lone = plain.count(b"=")
    if len(written) - len(plain) != 2 * (written.count(b"%") - lone):
        return None
    return plain.translate(bytes.maketrans(b"=" + bytes((stand_in,)), b"%="))


# Bytes whose escape is written one way only (two decimal digits), and that no key holds.
_PERCENT_STAND_INS = bytes(b for b in range(0x80, 0x100) if f"{b:X}".isdigit())


@functools.cache
def _percent_escape() -> re.Pattern[bytes]:
    return re.compile(rb"%[0-9A-Fa-f]{2}")


def _backslash_in_bulk(window: bytes) -> bytes | None:
    """Backslash escapes decoded in bulk (_escape_decode); None where that reads an escape
    that the token decoder does not (octal, `\\a`, `\\N{...}`, `\\U`, a line continuation:
    a Windows path in JSON, `C:\\\\apps`, holds one). A `\\x` or `\\u` without its hex
    digits (as where two views meet in a batch, one cut inside an escape) fails it: its
    backslash is doubled, so that it reads as written, and the window decoded again."""
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
    """Backslash escapes read by `unicode_escape`, which reads every escape the token
    decoder does as it does (an escaped backslash as one, `\\uXXXX` above 0xFF as a
    character that is then not ASCII) but JSON's `\\/`, and more that _backslash_in_bulk
    declines; None where it fails (an escape without its digits)."""
    if b"/" in body:
        body = body.replace(b"\\/", b"/")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # `\\q`: an escape it does not know, kept
            text = codecs.unicode_escape_decode(body)[0]
    except UnicodeDecodeError:
        return None
    return _as_latin_1(text)


@functools.cache
def _unfinished_escape() -> re.Pattern[bytes]:
    return re.compile(rb"\\(?=x(?![0-9A-Fa-f]{2})|u(?![0-9A-Fa-f]{4}))")


class EscapeFamily(NamedTuple):
    """One kind of escape: the byte its escapes start with, and the escapes that a window
    must hold to be decoded for it."""

    lead: bytes

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


_BACKSLASHES = EscapeFamily(b"\\")
_PERCENTS = EscapeFamily(b"%")
_REFERENCES = EscapeFamily(b"&")


# A table that writes a window as backslashes, the letters after one in escapes that
# codecs.escape_decode reads and the token decoder does not (`!`), and other bytes.
_BULK_ONLY_CLASSES = bytes(
    ord("\\") if b == ord("\\") else ord("!") if b in b"av01234567NU\r\n" else ord(".")
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


def _unescape_by_tokens(window: bytes, lo: int, codec: Codec) -> Decoded:
    parts = _token().split(window)
    tokens = parts[1::2]
    parts[1::2] = map(_token_table().get, tokens, itertools.repeat(_NOT_ASCII))
    data = b"".join(parts)

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
