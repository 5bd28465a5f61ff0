"""Bytes in, OpenAI keys out: the hot loop of every scan, linear in the input whatever it holds.

One Aho-Corasick pass looks for the marker `T3BlbkFJ` and its encoded forms (`encodings`); on a
clean file that pass is the whole cost. At a plain marker the key around it is read off by its
anatomy (`keys`); at an encoded one a window around it is decoded and searched again, up to
MAX_DEPTH encodings deep.

Hostile input (a marker or an encoded marker every few bytes) must not cost more than a clean
file of the same size times a small constant, so no work is done per hit beyond a few
comparisons:
- every handler says up to where the hits of its kind need no more work (`coverage`): the
  hits inside a run already read, or a window already asked for, are skipped;
- a key is a run of at least MIN_KEY_LENGTH key characters, and its encoded forms are runs too:
  the long runs are found once, left to right, and hits outside them are skipped in bulk;
- windows are merged before they are decoded, so each byte is decoded once per view, and a
  window is decoded only if it holds the start of a key in its encoding (every key starts with
  `sk-`): files of encoded markers with no key in them cost little more than the search;
- when a chunk of the buffer holds many hits, the plain markers are found one by one from
  where their coverage ends, and the encoded needles apart from them (each kind on its own,
  in chunks that start where its coverage ends, if they too are dense), so that skipped hits
  are never even listed.
The decoded bytes are also counted against a budget proportional to the buffer: a safety net
that real input never reaches. When it is reached, `search` says so, and the scan is reported
incomplete rather than clean.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

import ahocorasick_rs

from keysentry.scanner.encodings import (
    NEEDLES,
    Codec,
    Decoded,
    Kind,
    Needle,
    Pieces,
    base64_pieces,
    base64_views,
    could_hold_base64_key,
    escaped_base64_codec,
    escaped_key_codec,
    escapes_some_alphanumerics,
    hex_views,
    interior_width,
    long_runs,
    regular_lines,
    unescaped,
    utf16_views,
)
from keysentry.scanner.keys import (
    BASE64URL,
    MAX_HALF,
    MAX_PREFIX,
    MIN_HALF,
    MIN_KEY_LENGTH,
    Classified,
    classify,
)
from keysentry.scanner.needles import LEFTMOST, MARKER, SEARCH, TEXT_HEAD, nothing_to_find

# Encodings peeled off at most: UTF-16, then an escape layer, then base64 inside base64.
MAX_DEPTH = 4

# Decoded bytes allowed per buffer, counted over every depth: a safety net, far above what a
# real file decodes (only windows around encoded markers are decoded at all).
BUDGET_PER_BYTE = 64
BUDGET_FLOOR = 1 << 20

_INF = 1 << 62
_KEY_REACH = MAX_PREFIX + 2 * MAX_HALF + len(MARKER)  # the longest key
# How far before its marker a key's `sk-` is: at least `sk-` and a half, at most the longest
# prefix and a half.
_SK_LEAST, _SK_REACH = 3 + MIN_HALF, MAX_PREFIX + MAX_HALF
# How far an encoded key can reach from an encoded marker, in encoded characters.
_REACH_BASE64 = 640  # base64 of base64 of the longest key, with room to spare
_REACH_WRAPPED = 720  # the same plus its line breaks
_REACH_HEX = 2 * _KEY_REACH + 16
_REACH_ESCAPED = 6 * _KEY_REACH + 64  # `\u002d`, `&#x2d;`: six characters for one
_REACH_UTF16 = 2 * _REACH_ESCAPED  # an escaped key in UTF-16 text
# Each window looks this far past the hit that asked for it, so that a run of hits shares one.
_LOOKAHEAD = 1 << 14
# Merged windows are decoded in chunks of this size (overlapping by twice the reach).
_CHUNK = 1 << 18
_EDGE_MARGIN = 16  # see _View.near_cut_edge

_LONGEST = max(len(n.pattern) for n in NEEDLES)


_ENCODED_KINDS = tuple(kind for kind in Kind if kind is not Kind.PLAIN)


@functools.cache
def _needles_of(
    kinds: tuple[Kind, ...],
) -> tuple[ahocorasick_rs.BytesAhoCorasick, list[Needle], int]:
    """The needles of these kinds, their automaton and the length of the longest: built when
    a buffer first needs them searched apart from the others (see _search)."""
    needles = [n for n in NEEDLES if n.kind in kinds]
    automaton = ahocorasick_rs.BytesAhoCorasick([n.pattern for n in needles], matchkind=LEFTMOST)
    return automaton, needles, max(len(n.pattern) for n in needles)


# A search chunk with more hits than this switches the buffer to the per-kind search.
_SEARCH_CHUNK = 1 << 13
_LARGEST_SEARCH_CHUNK = 1 << 20  # chunks grow while they hold no hit
_DENSE = 16
_DENSE_PROBE = 1 << 10  # a chunk's head, searched first: see _dense_head
# Up to this size a buffer is first searched whole: without a hit, nothing else is set up.
_QUICK = 1 << 16
_KIND_COUNT = len(Kind)
# Per kind, chunks start small after a hit and grow while empty: before the kind's first hit
# as far as the whole search's chunks (a kind that never hits costs a few large calls, and the
# one large chunk that runs into a dense stretch is listed once); after it, only up to a size
# whose listing costs little even when it runs into a dense stretch.
_FIRST_KIND_CHUNK = 256
_LAST_KIND_CHUNK = 4096

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
# Plain hits are skipped up to the next run that can hold a key, listed this much at a time.
_KEY_RUN_REGION = 1 << 16
# A key's run holds the key and maybe an escape's tail before it (`u0022` of `\u0022`, `3D` of
# `%3D`: at most this many characters, see _key_ending_at); a longer run is a token that a key
# would be glued inside.
_ESCAPE_TAIL = 6
_TOO_LONG_FOR_A_KEY = b"\1" * (_KEY_REACH + _ESCAPE_TAIL + 1)
_DASH = ord("-")
_AND_3 = (3).__and__
# The narrowest wrapping whose lines are read joined from where a block starts (README).
_WRAP_WIDTH = 16


# The codecs of escaped windows and of UTF-16 readings, which a match is checked against
# (_add_outer).
_ESCAPES = (Codec.ESCAPE, Codec.PERCENT)
_UTF16 = (Codec.UTF16LE, Codec.UTF16BE)
# Whether an escaped window is decoded, and the codec of its matches, by the kind of hit that
# asked for it.
_CODEC_HELD = {"escaped": escaped_key_codec, "escaped base64": escaped_base64_codec}


class _RunClass(NamedTuple):
    """A character class whose long runs hold the keys (or their encoded forms)."""

    table: bytes  # bytes.translate table: 1 for a character of the class, 0 otherwise
    least: int  # the shortest run that can hold a key
    long: bytes  # that many 1s: what `bytes.find` looks for in the translated buffer


def _run_class(characters: bytes, least: int) -> _RunClass:
    return _RunClass(bytes(int(c in characters) for c in range(256)), least, b"\1" * least)


_ALPHANUMERIC = bytes(sorted(BASE64URL - frozenset(b"-_")))


@functools.cache
def _key_tail() -> re.Pattern[bytes]:
    """Where a key's marker can be: followed by a second half of MIN_HALF to MAX_HALF key
    characters to the end of their run, made of at least six stretches of one character
    (`keys.classify` asks a half for at least six distinct characters: a placeholder such as
    `xxxx` is no key). The second half is group 2."""
    key_char = rb"[-0-9A-Z_a-z]"
    return re.compile(
        re.escape(MARKER)
        + rb"(?=(?:(%s)\1*+){6})" % key_char
        + rb"(?=(%s{%d,%d}+)(?!%s))" % (key_char, MIN_HALF, MAX_HALF, key_char)
    )


_BASE64_CHARS = _ALPHANUMERIC + b"+/_-"
# Base64 characters as `a`, line breaks as themselves, anything else as a space.
_SHAPE = bytes(
    ord("a") if c in _BASE64_CHARS else c if c in b"\r\n" else ord(" ") for c in range(256)
)
_KEY_RUNS = _run_class(bytes(sorted(BASE64URL)), MIN_KEY_LENGTH)
# N base64 characters carry 6N bits: the shortest key's 8 * MIN_KEY_LENGTH need this many.
_BASE64_KEY_RUN = -(-8 * MIN_KEY_LENGTH // 6)
_BASE64_RUNS = _run_class(_BASE64_CHARS, _BASE64_KEY_RUN)
_WRAPPED_RUNS = _run_class(_BASE64_CHARS + b"\r\n", _BASE64_KEY_RUN)
# What a key's base64 span can hold: its characters, padding, line breaks (wrapped).
_IN_BASE64_SPANS = _BASE64_CHARS + b"=\r\n"
_HEX_RUNS = _run_class(b"0123456789abcdefABCDEF", 2 * MIN_KEY_LENGTH)


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


class Detection(NamedTuple):
    matches: list[Match]
    incomplete: str | None  # why part of the buffer was not searched, or None


def detect(data: bytes) -> list[Match]:
    """Every OpenAI key in `data`, once each, in order of position. Where the decoding budget
    was reached (never on real input) the rest goes unsearched: callers that must not miss a
    key use `search`, which says so."""
    return search(data).matches


def search(data: bytes) -> Detection:
    """Every OpenAI key in `data`, and whether all of it was searched."""
    if len(data) <= _QUICK and nothing_to_find(data):
        return Detection([], None)  # most files: no needle, not UTF-16
    budget = _Budget(BUDGET_PER_BYTE * len(data) + BUDGET_FLOOR)
    matches = _once_each(_Pass(data, 0, budget).run())
    reason = None
    if budget.exhausted:
        reason = f"hostile input: decoding stopped after {budget.limit} bytes"
    return Detection(matches, reason)


def _once_each(matches: list[Match]) -> list[Match]:
    """`matches` (in order of position) with one of each occurrence: a match of the same key
    that starts in the first half of the one before is that occurrence read through two
    layers (UTF-16 text inside an escaped window, whose place in a batch shifts it by a
    byte, also reads as UTF-16 of the other parity); the one read through fewer layers is
    kept. Two occurrences of a key are at least a key apart; the spans of encoded ones may
    share a character at their ends."""
    kept: list[Match] = []
    last: dict[bytes, int] = {}  # the index in `kept` of each key's last match
    for match in matches:
        index = last.get(match.key)
        if index is not None:
            before = kept[index]
            if match.start < (before.start + before.end) // 2:
                if len(match.encoding) < len(before.encoding):
                    kept[index] = match
                continue
        last[match.key] = len(kept)
        kept.append(match)
    return kept


def _dense_head(
    automaton: ahocorasick_rs.BytesAhoCorasick, view: memoryview, pos: int, end: int, longest: int
) -> bool:
    """Whether the search chunk [pos, end) holds more than _DENSE hits, as its head already
    shows: listing a hit costs the library about 0.3 µs, so a dense chunk is not listed whole
    only to be searched again another way. The search is leftmost-first, so the head's hits
    that start more than `longest` before its end are the chunk's own."""
    head = pos + _DENSE_PROBE
    if head >= end:
        return False
    hits = automaton.find_matches_as_indexes(view[pos:head])
    return len(hits) > _DENSE and hits[_DENSE][1] < _DENSE_PROBE - longest


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = self.left = limit
        self.exhausted = False

    def take(self, size: int) -> bool:
        if size > self.left:
            self.exhausted = True
            return False
        self.left -= size
        return True


# Up to this many long runs in a window are found one by one with `bytes.find`; more are
# listed in bulk (`encodings.long_runs`).
_FEW_RUNS = 32


class _Runs:
    """The long runs of one character class, found left to right, each once. The buffer is
    translated to 0s and 1s once, so that a run is a `bytes.find` of 1s: C speed, however
    many hits there are."""

    def __init__(self, data: bytes, runs: _RunClass) -> None:
        self._data, self._runs = data, runs
        self._start = self._end = -1

    @functools.cached_property
    def flags(self) -> bytes:
        """The buffer as 0s and 1s: translated once, when first asked."""
        return self._data.translate(self._runs.table)

    def around(self, pos: int) -> tuple[int, int]:
        """The long run that holds `pos`, else the next one (its start is past `pos`).
        Positions must not decrease from call to call."""
        if self._end <= pos:
            self._start, self._end = self._run_from(self.flags, pos)
        return self._start, self._end

    def start_of(self, lo: int, pos: int) -> int:
        """Where the run that holds the character before `pos` starts, or `lo` if it starts
        before `lo`."""
        found = self.last_outside(lo, pos)
        return lo if found < 0 else found + 1

    def last_outside(self, lo: int, hi: int) -> int:
        """The last position in [lo, hi) that is not of the class, or -1."""
        return self.flags.rfind(b"\0", lo, hi)

    def few_long_runs(self, lo: int, hi: int, lead: int) -> Pieces | None:
        """The long runs in [lo, hi) (as `encodings.long_runs` lists them) when there are at
        most _FEW_RUNS, found with `bytes.find` whatever lies between them; else None."""
        flags, least = self.flags, self._runs.least
        values: list[bytes] = []
        starts: list[int] = []
        pos = lo
        if 0 < lo < hi and flags[lo] and flags[lo - 1]:  # a run that started before `lo`
            end = flags.find(b"\0", lo, hi)
            pos = hi if end < 0 else end
            if lead and lead + pos - lo >= least:
                values.append(self._data[lo:pos])
                starts.append(lo)
        lead = lead if starts else 0
        while len(values) <= _FEW_RUNS:
            found = flags.find(self._runs.long, pos, hi)
            if found < 0:
                at_ends = (bool(starts) and starts[0] == lo, bool(starts) and pos == hi)
                return Pieces(values, lambda: starts, lead, at_ends)
            start = flags.rfind(b"\0", pos, found) + 1 or pos
            end = flags.find(b"\0", found, hi)
            pos = hi if end < 0 else end
            values.append(self._data[start:pos])
            starts.append(start)
        return None

    def find_run(self, lo: int, hi: int, length: int) -> int:
        """Where the first run of at least `length` characters in [lo, hi) is, or -1."""
        return self.flags.find(b"\1" * length, lo, hi)

    def holds_long_run(self, lo: int, hi: int) -> bool:
        return self.flags.find(self._runs.long, lo, hi) >= 0

    def _run_from(self, flags: bytes, pos: int) -> tuple[int, int]:
        if pos >= len(flags):
            return _INF, _INF
        start = end = pos
        if flags[pos]:  # the run that holds `pos`, if it is long
            start = flags.rfind(b"\0", 0, pos) + 1
            end = flags.find(b"\0", pos)
            end = len(flags) if end < 0 else end
            if end - start >= self._runs.least:
                return start, end
        start = flags.find(self._runs.long, end)
        if start < 0:
            return _INF, _INF
        end = flags.find(b"\0", start)
        return start, len(flags) if end < 0 else end


class _KeyRuns:
    """Where the runs of key characters that can hold a key are, listed in bulk a region at a
    time (one regex search, `_key_tail`): a plain hit in any other run needs no work, so hits
    are skipped up to the next run listed (key-shaped near-misses one a line would otherwise
    be read one by one)."""

    def __init__(self, data: bytes, runs: _Runs) -> None:
        self._data, self._runs = data, runs
        self._lo = self._hi = 0
        self._starts: list[int] = []
        self._ends: list[int] = []

    def next_from(self, pos: int) -> int:
        """`pos` if a key's run can hold it, else where the next such run can start (or where
        the region listed ends): no plain hit before that is in a key."""
        if not self._lo <= pos < self._hi:
            if pos >= len(self._data):
                return pos
            self._list(pos)
        index = bisect.bisect_right(self._ends, pos)
        if index == len(self._ends):
            return self._hi
        return max(pos, self._starts[index])

    def _list(self, pos: int) -> None:
        """Lists a region of whole runs from the one `pos` is in: for each marker with a tail
        that can end a key, where its run ends, and the earliest its run can start (a key's
        prefix and first half, and an escape's tail before it, see _key_ending_at)."""
        flags = self._runs.flags
        lo = flags.rfind(b"\0", 0, pos) + 1 if flags[pos] else pos
        hi = flags.find(b"\0", pos + _KEY_RUN_REGION)
        hi = len(self._data) if hi < 0 else hi
        self._starts, self._ends = [], []
        start = lo
        while start < hi:  # runs too long to be a key's are not searched (a marker every 8 bytes)
            too_long = flags.find(_TOO_LONG_FOR_A_KEY, start, hi)
            stop = hi if too_long < 0 else flags.rfind(b"\0", start, too_long) + 1 or start
            self._list_tails(start, stop)
            if too_long < 0:
                break
            start = flags.find(b"\0", too_long, hi)
            start = hi if start < 0 else start
        self._lo, self._hi = lo, hi

    def _list_tails(self, start: int, stop: int) -> None:
        """Lists the key tails in [start, stop) (whole runs), searched from the first marker to
        the end of the last one's longest second half (and the character after it). A key's
        halves are as long as each other, so a tail is listed only where the `-` that ends
        the key's prefix is a half's length before its marker (as _keys_in_run asks)."""
        data = self._data
        first = data.find(MARKER, start, stop)
        if first < 0:
            return
        last = data.rfind(MARKER, first, stop) + len(MARKER) + MAX_HALF + 1
        for tail in _key_tail().finditer(data, first, min(stop, last)):
            marker, end = tail.start(), tail.end(2)
            before = 2 * marker + len(MARKER) - end - 1
            if before < 0 or data[before] != _DASH:
                continue  # halves of unequal lengths: no key ends here
            self._starts.append(marker - (end - tail.end()) - MAX_PREFIX - _ESCAPE_TAIL)
            self._ends.append(end)


class _CharIndex:
    """How many characters that are not line breaks come before a position: the count that
    base64 groups are aligned by (see base64_views). Counted on from the last position asked,
    so that asking in increasing order (a small step back is allowed) costs one pass."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = self._breaks = 0
        self._breaks_in = self._lf_only if b"\r" not in data else self._lf_and_cr

    def at(self, pos: int) -> int:
        last = self._pos
        if pos >= last:
            self._breaks += self._breaks_in(last, pos)
        else:
            self._breaks -= self._breaks_in(pos, last)
        self._pos = pos
        return pos - self._breaks

    def _lf_only(self, lo: int, hi: int) -> int:
        return self._data.count(b"\n", lo, hi)

    def _lf_and_cr(self, lo: int, hi: int) -> int:
        return self._data.count(b"\n", lo, hi) + self._data.count(b"\r", lo, hi)


class _Introducers:
    """Where the escapes may be (`\\`, `%`, `&` of `&#`): the nearest before a position and the
    first after it. Positions must not decrease from call to call. Single bytes, since finding
    one byte is many times faster than finding two (an `&` without `#` only asks for a look)."""

    _PATTERNS = (b"\\", b"%", b"&")

    def __init__(self, data: bytes, reach: int) -> None:
        self._data, self._reach = data, reach
        self._next: list[int | None] = [None] * len(self._PATTERNS)
        self._prev = [-_INF] * len(self._PATTERNS)

    def around(self, pos: int) -> tuple[int, int]:
        prev, after = -_INF, _INF
        for i, pattern in enumerate(self._PATTERNS):
            upcoming = self._next[i]
            if upcoming is None or upcoming < pos:
                floor = max(0, pos - self._reach)
                if upcoming is not None:
                    floor = max(floor, upcoming)
                    self._prev[i] = upcoming
                before = self._data.rfind(pattern, floor, pos)
                if before >= 0:
                    self._prev[i] = before
                found = self._data.find(pattern, pos)
                upcoming = self._next[i] = _INF if found < 0 else found
            prev, after = max(prev, self._prev[i]), min(after, upcoming)
        return prev, after


class _Pass:
    """One buffer at one depth: search, collect windows, decode them, recurse."""

    def __init__(self, data: bytes, depth: int, budget: _Budget, exact: bool = False) -> None:
        # `exact`: escaped windows are read by the token decoder only (see _add_unescaped).
        self.data, self.depth, self.budget, self.exact = data, depth, budget, exact
        self.found: dict[tuple[int, bytes], Match] = {}
        self.coverage = [0] * _KIND_COUNT
        self.windows: dict[str, list[_Window]] = {
            "base64": [],
            "wrapped": [],
            "hex": [],
            "escaped": [],
            "escaped base64": [],
            "utf16": [],
            "stretch": [],
        }
        self.introducers: dict[Kind, _Introducers] = {}
        self.decoding = depth < MAX_DEPTH
        self._next_sk = -_INF
        self.handlers: dict[Kind, Callable[[int, int], int]] = {
            Kind.PLAIN: self._plain,
            Kind.BASE64: self._base64,
            Kind.HEX: self._hex,
            Kind.ESCAPED: self._escaped,
            Kind.UTF16: self._utf16,
        }

    @functools.cached_property
    def hit_index(self) -> _CharIndex:
        """Characters other than line breaks counted, to give a base64 hit (and a wrapped
        window) its alignment."""
        return _CharIndex(self.data)

    @functools.cached_property
    def shape(self) -> bytes:
        """The buffer with base64 as `a`, line breaks kept, anything else a space (see
        _stretch_covers)."""
        return self.data.translate(_SHAPE)

    @functools.cached_property
    def key_runs(self) -> _Runs:
        return _Runs(self.data, _KEY_RUNS)

    @functools.cached_property
    def runs_that_can_hold_keys(self) -> _KeyRuns:
        return _KeyRuns(self.data, self.key_runs)

    @functools.cached_property
    def base64_runs(self) -> _Runs:
        return _Runs(self.data, _BASE64_RUNS)

    @functools.cached_property
    def wrapped_runs(self) -> _Runs:
        return _Runs(self.data, _WRAPPED_RUNS)

    @functools.cached_property
    def hex_runs(self) -> _Runs:
        return _Runs(self.data, _HEX_RUNS)

    def run(self) -> list[Match]:
        self._search()
        if self.decoding:
            self._decode_windows()
        return sorted(self.found.values(), key=lambda m: (m.start, m.end))

    # --- the search -----------------------------------------------------------------------

    def _search(self) -> None:
        if not self.decoding:  # only plain hits are handled: their one needle, by bytes.find
            self._search_markers(0)
            return
        view = memoryview(self.data)
        dense_at = self._search_together(view, 0, SEARCH, NEEDLES, _LONGEST)
        if dense_at is None:
            return
        # A dense stretch: the plain markers are found one by one from where their coverage
        # ends, and the encoded needles together, each kind apart only if they too are dense.
        self._search_markers(dense_at)
        dense_at = self._search_together(view, dense_at, *_needles_of(_ENCODED_KINDS))
        if dense_at is not None:
            for kind in _ENCODED_KINDS:
                self._search_kind(kind, view, dense_at)

    def _search_together(
        self,
        view: memoryview,
        pos: int,
        automaton: ahocorasick_rs.BytesAhoCorasick,
        needles: Sequence[Needle],
        longest: int,
    ) -> int | None:
        """The hits of `automaton` from `pos` on, in chunks that grow while they hold none;
        where a chunk is dense (more than _DENSE hits), where it starts, and the rest is left
        to the caller."""
        size, coverage = len(view), self.coverage
        chunk = _SEARCH_CHUNK
        while pos < size:
            end = min(size, pos + chunk)
            if chunk == _SEARCH_CHUNK and _dense_head(automaton, view, pos, end, longest):
                return pos
            hits = automaton.find_matches_as_indexes(view[pos:end])
            if len(hits) > _DENSE:
                return pos
            for index, start, _ in hits:
                needle = needles[index]
                if pos + start >= coverage[needle.kind]:  # else covered: skipped without a call
                    self._hit(needle.kind, pos + start, needle.phase)
            if end == size:
                return None
            chunk = _SEARCH_CHUNK if hits else min(4 * chunk, _LARGEST_SEARCH_CHUNK)
            pos = end - longest + 1
        return None

    def _search_kind(self, kind: Kind, view: memoryview, pos: int) -> None:
        """The hits of one kind from `pos` on, in chunks that start where its coverage ends:
        hits already covered are never listed."""
        automaton, needles, longest = _needles_of((kind,))
        coverage = self.coverage
        size, chunk, largest = len(view), _FIRST_KIND_CHUNK, _LARGEST_SEARCH_CHUNK
        while pos < size:
            end = min(size, pos + chunk)
            hits = automaton.find_matches_as_indexes(view[pos:end])
            for index, start, _ in hits:
                if pos + start >= coverage[kind]:
                    self._hit(kind, pos + start, needles[index].phase)
            if end == size:
                return
            if hits:
                chunk, largest = _FIRST_KIND_CHUNK, _LAST_KIND_CHUNK
            else:
                chunk = min(4 * chunk, largest)
            pos = max(end - longest + 1, self.coverage[kind])

    def _search_markers(self, pos: int) -> None:
        """The plain markers from `pos` on: one needle, so each is found by `bytes.find` from
        where the coverage ends, and a dense stretch is never listed."""
        data, coverage = self.data, self.coverage
        at = data.find(MARKER, pos)
        while at >= 0:
            self._hit(Kind.PLAIN, at, 0)
            at = data.find(MARKER, max(at + 1, coverage[Kind.PLAIN]))

    def _hit(self, kind: Kind, at: int, phase: int) -> None:
        if at < self.coverage[kind]:  # a pass that decodes nothing lists plain hits only
            return
        self.coverage[kind] = max(at + 1, self.handlers[kind](at, phase))

    # --- the handlers: each returns up to where hits of its kind need no more work ---------

    def _plain(self, marker: int, _: int) -> int:
        sk = self._sk_from(marker - _SK_REACH)
        if sk > marker - _SK_LEAST:
            covered = sk + _SK_LEAST  # a key's `sk-` is in reach before its marker
        else:
            start, end = self.key_runs.around(marker)
            if start > marker:
                covered = start  # in a short run: no key here, nor until the next long run
            else:
                self._keys_in_run(end)
                covered = end
        covered = self.runs_that_can_hold_keys.next_from(covered)
        if self.decoding:
            covered = min(covered, self._escapes_near(Kind.PLAIN, marker))
        return covered

    def _sk_from(self, pos: int) -> int:
        """The first `sk-` at or after `pos`. Positions must not decrease from call to call."""
        if self._next_sk < pos:
            found = self.data.find(b"sk-", max(0, pos))
            self._next_sk = _INF if found < 0 else found
        return self._next_sk

    def _keys_in_run(self, end: int) -> None:
        """The key that ends where the long run ending at `end` ends, if there is one: only a
        marker near the run's end can be its, and it starts with `sk-`."""
        data = self.data
        if data.find(b"sk-", max(0, end - _KEY_REACH - 8), end - MIN_KEY_LENGTH + 3) < 0:
            return
        last = end - MIN_HALF
        marker = data.find(MARKER, max(0, end - MAX_HALF - len(MARKER)), last)
        while marker >= 0:
            before = 2 * marker + len(MARKER) - end - 1  # where the prefix's last `-` must be
            if before >= 0 and data[before] == _DASH:
                match = self._key_ending_at(marker, end)
                if match is not None:
                    self.found.setdefault((match.start, match.key), match)
            marker = data.find(MARKER, marker + 1, last)

    def _key_ending_at(self, marker: int, end: int) -> Match | None:
        """The key whose marker is at `marker` and that ends where its run does (`end`), read
        off by its anatomy, or None."""
        buf = self.data
        after = marker + len(MARKER)
        half = end - after
        if not MIN_HALF <= half <= MAX_HALF:
            return None  # too short, or glued into a longer run
        # The left run holds the prefix and the first half, maybe behind an escape (`\n`, `%3D`).
        lo = max(0, marker - half - MAX_PREFIX - _ESCAPE_TAIL)
        run_start = self.key_runs.start_of(lo, marker)
        if run_start == lo and lo > 0 and buf[lo - 1] in BASE64URL:
            return None  # the run goes on: the key is glued inside a longer token
        first_half_at = marker - half
        if first_half_at < run_start:
            return None
        region = buf[run_start:first_half_at]
        first, second = buf[first_half_at:marker], buf[after:end]
        at = region.find(b"sk-")
        while at >= 0:
            if _is_escape_residue(buf, run_start, region[:at]):
                classified = classify(region[at:], first, second)
                if classified is not None:
                    key_start = run_start + at
                    return Match(key_start, end, buf[key_start:end], classified)
            at = region.find(b"sk-", at + 1)
        return None

    def _base64(self, hit: int, phase: int) -> int:
        covered = self._escapes_near(Kind.BASE64, hit)
        line = self.base64_runs.around(hit)
        wrapped = self.wrapped_runs.around(hit)
        # The value the hit is in has its groups where the encoded marker says: on one line,
        # counted by position; over lines, by characters other than line breaks.
        if wrapped[0] <= hit and not self._on_one_line(hit, wrapped):
            # Lines of base64: the wrapped windows are read both joined and line by line.
            groups = 1 << (self.hit_index.at(hit) - phase) % 4
            in_lines = self._window_in_run("wrapped", hit, wrapped, _REACH_WRAPPED, groups)
            return min(covered, in_lines)
        groups = 1 << (hit - phase) % 4
        start, end = line
        if start <= hit and end - start < _LOOKAHEAD:
            # A short run, as values in fields or one a line are: rather than a window for each
            # run, the stretch around the hit is read as a whole (see _stretch_views).
            self._window("stretch", hit, _REACH_BASE64, groups)
            return min(covered, self._stretch_covers(hit))
        return min(covered, self._window_in_run("base64", hit, line, _REACH_BASE64, groups))

    def _on_one_line(self, hit: int, wrapped: tuple[int, int]) -> bool:
        """Whether the run of base64 and line breaks at `hit` holds base64 only on the hit's
        own line (a value between a line break and a `=`, one a line): no wrapped value, so
        it is read as values in fields are, one window for many lines."""
        flags = self.base64_runs.flags
        lo, hi = wrapped
        start = flags.rfind(b"\0", lo, hit) + 1 or lo
        end = flags.find(b"\0", hit, hi)
        end = hi if end < 0 else end
        return flags.find(b"\1", lo, start) < 0 and flags.find(b"\1", end, hi) < 0

    def _stretch_covers(self, hit: int) -> int:
        """Up to where a stretch at `hit` reads base64 hits' values: its look-ahead, but not
        into base64 that goes on over a line break, which is read joined by windows of its
        own (so its hits must be handled)."""
        end = hit + _LOOKAHEAD
        over = [self.shape.find(lines, hit, end) for lines in (b"a\na", b"a\r\na", b"a\ra")]
        found = min((at for at in over if at >= 0), default=-1)
        if found < 0:
            return end
        return max(hit + 1, self.wrapped_runs.last_outside(hit, found) + 1)

    def _hex(self, hit: int, _: int) -> int:
        return self._window_in_run("hex", hit, self.hex_runs.around(hit), _REACH_HEX)

    def _escaped(self, hit: int, _: int) -> int:
        return self._window("escaped", hit, _REACH_ESCAPED)

    def _utf16(self, hit: int, _: int) -> int:
        return self._window("utf16", hit, _REACH_UTF16)

    def _escapes_near(self, kind: Kind, hit: int) -> int:
        """Asks for an escaped window when an escape is near the hit (a key with `-` written
        `\\u002d`, base64 with `/` written `\\/`)."""
        if kind not in self.introducers:
            self.introducers[kind] = _Introducers(self.data, _REACH_ESCAPED)
        prev, after = self.introducers[kind].around(hit)
        if hit - prev <= _REACH_ESCAPED or after - hit <= _REACH_ESCAPED:
            family = "escaped base64" if kind is Kind.BASE64 else "escaped"
            return self._window(family, hit, _REACH_ESCAPED)
        return after - _REACH_ESCAPED

    def _window(self, family: str, hit: int, reach: int, groups: int = 0b1111) -> int:
        lo, hi = max(0, hit - reach), hit + reach + _LOOKAHEAD
        self.windows[family].append(_Window(lo, hi, lo == 0, hi >= len(self.data), groups))
        return hit + _LOOKAHEAD

    def _window_in_run(
        self, family: str, hit: int, run: tuple[int, int], reach: int, groups: int = 0b1111
    ) -> int:
        start, end = run
        if start > hit:
            return start
        lo, hi = max(start, hit - reach), min(end, hit + reach + _LOOKAHEAD)
        self.windows[family].append(_Window(lo, hi, lo == start, hi == end, groups))
        return end if hi == end else hit + _LOOKAHEAD

    # --- decoding -------------------------------------------------------------------------

    def _decode_windows(self) -> None:
        data, size = self.data, len(self.data)
        views: list[_View] = []
        if not any(self.windows.values()):
            if self.depth == 0:
                self._search_views([_View(v, size, (False, False)) for v in _utf16_text(data)])
            return
        # On one line, each window is decoded only as its hit says, so windows are merged
        # only with others of the same alignment: a key whose hit was skipped is within reach
        # of the window that covered it, and one past that has its own hit and window.
        aligned: dict[int, list[_Window]] = {}
        for window in self.windows["base64"]:
            aligned.setdefault(window.groups, []).append(window)
        # A chunk of base64 without the encoded form of a key's start is not decoded at all.
        for windows in aligned.values():
            for lo, hi, edges, groups in _chunks(windows, _REACH_BASE64, size):
                if could_hold_base64_key(data[lo:hi]):
                    decoded = base64_views(data, lo, hi, False, groups, lo)
                    views += _views(decoded, hi - lo, edges)
        for lo, hi, edges, groups in _chunks(self.windows["stretch"], _REACH_BASE64, size):
            if could_hold_base64_key(data[lo:hi]):
                views += self._stretch_views(lo, hi, edges, groups)
        for lo, hi, edges, groups in _chunks(self.windows["wrapped"], _REACH_WRAPPED, size):
            if could_hold_base64_key(data[lo:hi]):
                views += self._wrapped_views(lo, hi, edges, groups)
        for lo, hi, edges, _ in _chunks(self.windows["hex"], _REACH_HEX, size):
            views += _views(hex_views(data, lo, hi), hi - lo, edges)
        for lo, hi, edges, _ in _chunks(self.windows["utf16"], _REACH_UTF16, size):
            views += _views(utf16_views(data, lo, hi, odd_too=True), hi - lo, edges)
        if self.depth == 0:
            views += [_View(v, size, (False, False)) for v in _utf16_text(data)]
        for family in ("escaped", "escaped base64"):
            codec_held = _CODEC_HELD[family]
            for lo, hi, edges, _ in _chunks(self.windows[family], _REACH_ESCAPED, size):
                if codec := codec_held(data[lo:hi]):
                    bulk = unescaped(data, lo, hi, codec, self.exact)
                    view = Decoded(bulk.fast, bulk.codec, lambda s, e: (s, e))
                    views.append(_View(view, hi - lo, edges, bulk.by_tokens))
        self._search_views(views)

    def _wrapped_views(
        self, lo: int, hi: int, edges: tuple[bool, bool], groups: int
    ) -> Iterator[_View]:
        """A window of wrapped base64 read joined, as one value over its lines, with groups
        where its hits said, from the run's start when the window starts there, and from each
        line that starts a new block (see _block_starts); and, where a line is long enough to
        hold a key alone, line by line: every line from its own start (one value a line), and
        from where the hits said when a value can start inside a line (after a `/` or `+`)."""
        data, lo_index, window = self.data, self.hit_index.at(lo), self.data[lo:hi]
        cut = edges[0]
        lead: int | None = 0
        if cut:  # the first line starts before the window: after a line break or the run's start
            before = self.base64_runs.last_outside(max(0, lo - 2 * _REACH_WRAPPED), lo)
            lead = lo - before - 1 if before >= 0 else None
        starts = 0
        if self.base64_runs.find_run(lo, hi, _WRAP_WIDTH) >= 0:  # a line that can start a block
            starts = _block_starts(window, lo_index, cut, lead)
        joined = groups | (0 if cut else 1 << lo_index % 4) | starts
        yield from _views(base64_views(data, lo, hi, True, joined, lo_index), hi - lo, edges)
        if not self.base64_runs.holds_long_run(lo, hi):
            return
        if lead is None:  # too far back to look: read it from every alignment
            every = base64_views(data, lo, hi, False, 0b1111, lo_index)
            yield from _views(every, hi - lo, edges)
            return
        yield from self._pieces_view(lo, hi, lead, edges)
        if b"/" in window or b"+" in window:
            hits_said = base64_views(data, lo, hi, False, groups, lo_index)
            yield from _views(hits_said, hi - lo, edges)

    def _pieces_view(
        self, lo: int, hi: int, lead: int, edges: tuple[bool, bool]
    ) -> Iterator[_View]:
        """The runs of base64 in `data[lo:hi]` that can hold a key, each read from its own
        start (`base64_pieces`). `lead`: how many characters of the run `lo` is in come before
        it (0: that run is not read here). The view's ends are cut only where its first run
        starts at the window's cut start, or its last ends at the cut end."""
        pieces = self.base64_runs.few_long_runs(lo, hi, lead)
        if pieces is None:  # many: lines of one length are read without listing them
            regular = regular_lines(self.data, lo, hi, lead, _BASE64_KEY_RUN)
            if regular is not None:
                decoded, (at_lo, at_hi) = regular
                yield _View(decoded, hi - lo, (edges[0] and at_lo, edges[1] and at_hi))
                return
            pieces = long_runs(self.data, lo, hi, lead, _BASE64_KEY_RUN)
        if pieces.values:
            at_lo, at_hi = pieces.at_ends
            cut = (edges[0] and at_lo, edges[1] and at_hi)
            yield _View(base64_pieces(pieces), hi - lo, cut)

    def _stretch_views(
        self, lo: int, hi: int, edges: tuple[bool, bool], groups: int
    ) -> Iterator[_View]:
        """A stretch around short runs of base64 (see _base64): every run read from its own
        start (values in fields, one a line); and, when a value can start inside a run (after
        a `/` or `+`), the stretch from where the hits said, whatever is not base64 read as
        `/` (which ends a value as its delimiter does)."""
        data = self.data
        lead = 0
        if edges[0] and self.base64_runs.last_outside(lo, lo + 1) < 0:
            # The first run starts before the stretch; if far back, it is long, and its own
            # windows read it (see _base64).
            before = self.base64_runs.last_outside(max(0, lo - _LOOKAHEAD), lo)
            lead = lo - before - 1 if before >= 0 else 0
        yield from self._pieces_view(lo, hi, lead, edges)
        window = data[lo:hi]
        if b"/" in window or b"+" in window:
            starts = groups | _after_slash_or_plus(window, lo)
            stretched = base64_views(data, lo, hi, False, starts, lo, stretch=True)
            yield from _views(stretched, hi - lo, edges)

    def _search_views(self, views: list[_View]) -> None:
        """Searches the decoded views, many small ones in one pass: they are joined with a
        NUL between them, which no key or encoded key runs across. Views searched for plain
        keys only are joined apart."""
        batches: dict[bool, list[_View]] = {True: [], False: []}
        sizes = dict.fromkeys(batches, 0)
        for view in views:
            if not self.budget.take(view.cost):
                break
            deeper = view.decoded.deeper
            batches[deeper].append(view)
            sizes[deeper] += len(view.decoded.data) + 1
            if sizes[deeper] >= _CHUNK:
                self._search_batch(batches[deeper], deeper)
                batches[deeper], sizes[deeper] = [], 0
        for deeper, batch in batches.items():
            if batch:
                self._search_batch(batch, deeper)

    def _search_batch(self, batch: list[_View], deeper: bool) -> None:
        joined = b"\0".join(v.decoded.data for v in batch)
        starts = list(itertools.accumulate((len(v.decoded.data) + 1 for v in batch), initial=0))
        escaped: dict[int, list[Match]] = {}  # by view: see _add_unescaped
        depth = self.depth + 1 if deeper else MAX_DEPTH  # at MAX_DEPTH, nothing is decoded
        for inner in _Pass(joined, depth, self.budget, self.exact).run():
            index = bisect.bisect_right(starts, inner.start) - 1
            view, offset = batch[index], starts[index]
            local = inner._replace(start=inner.start - offset, end=inner.end - offset)
            if local.end > len(view.decoded.data) or view.near_cut_edge(local):
                continue  # across two views, or cut: found whole in the next chunk
            if view.by_tokens is not None:
                escaped.setdefault(index, []).append(local)
            else:
                self._add_outer(local, view.decoded)
        for index, matches in escaped.items():
            self._add_unescaped(batch[index], matches)

    def _add_unescaped(self, view: _View, matches: list[Match]) -> None:
        """Only the token decoder can locate a match in an escaped window: it is run once per
        window, whatever the number of matches (a window of keys each written with escapes
        would otherwise cost its whole size per key). Where the bulk decoder read a corner
        of it differently, the token decoder's reading is searched instead."""
        assert view.by_tokens is not None
        exact = view.by_tokens()
        if exact.data == view.decoded.data:
            for local in matches:
                self._add_outer(local, exact)
            return
        exact_view = view._replace(decoded=exact)
        # Windows inside are read exactly too: a bulk reading there could ask for another
        # pass in turn, at every depth.
        for inner in _Pass(exact.data, self.depth + 1, self.budget, exact=True).run():
            if not exact_view.near_cut_edge(inner):
                self._add_outer(inner, exact)

    def _utf16_key_stands(self, codec: Codec, start: int, end: int) -> bool:
        """Whether a UTF-16 key read at [start, end) stands. ASCII text in UTF-16 reads the
        same in either byte order one byte over, but at its ends (see utf16_views): where
        the NULs beside the key let the other reading hold it whole too, a key that reading
        sees glued to a key character where this one saw that byte merged into a non-ASCII
        character is glued (between two characters that are not key characters, README). A
        key both readings find is reported once (see _preferred)."""
        buf, size = self.data, len(self.data)
        if codec is Codec.UTF16LE:  # characters at start, start + 2, ...; NULs after them
            if start == 0 or buf[start - 1]:
                return True  # read as BE one byte over, its first character is merged
            after = end  # read as BE, the byte after the key is a character
            glued = after < size and buf[after] in BASE64URL
            return not (glued and (after + 1 >= size or buf[after + 1]))
        if end >= size or buf[end]:  # BE: NULs before its characters
            return True  # read as LE one byte over, its last character is merged
        before = start - 1  # read as LE, the byte before the key is a character
        glued = before >= 0 and buf[before] in BASE64URL
        return not (glued and (before == 0 or buf[before - 1]))

    def _add_outer(self, inner: Match, view: Decoded) -> None:
        codec, (start, end) = view.report(inner.start, inner.end)
        if codec in _ESCAPES and escapes_some_alphanumerics(self.data[start:end]):
            return  # letters escaped one by one among plain ones: not a key's writing
        if codec in _UTF16 and not self._utf16_key_stands(codec, start, end):
            return
        if codec is Codec.BASE64 and self.data[start:end].translate(None, _IN_BASE64_SPANS):
            return  # read across what a stretch reads as `/` (the `\` of `\/`): not its base64
        encoding = (codec, *inner.encoding)
        match = Match(start, end, inner.key, inner.classified, encoding)
        # One occurrence, read two ways, is reported once (see _preferred). Both UTF-16
        # byte orders read it one byte apart: LE from `start`, BE from `start - 1`.
        at = start - 1 if codec is Codec.UTF16LE else start
        before = self.found.get((at, match.key))
        if before is None or _preferred(before) < _preferred(match):
            self.found[at, match.key] = match


def _preferred(match: Match) -> tuple[bool, int, int]:
    """How one occurrence read two ways is chosen: from even offsets, where both UTF-16 byte
    orders find it (each reports what it finds; the other may not, as an escape's lead before
    the key, `%3Dsk-…`, can be merged in it); then ending where the reading that took in more
    of its encoding says (base64 with `\\/` read as it is ends a key on the `\\`, read with
    `\\/` decoded first after it); then through the fewer layers."""
    return match.start % 2 == 0, match.end, -len(match.encoding)


class _View(NamedTuple):
    """A decoded window, what decoding it cost, and whether its ends were cut out of longer
    text; escaped windows also carry their token decoder."""

    decoded: Decoded
    cost: int
    cut: tuple[bool, bool]
    by_tokens: Callable[[], Decoded] | None = None

    def near_cut_edge(self, match: Match) -> bool:
        """A match this close to a cut end may be glued to what was cut off: it is dropped
        there and found whole in the neighbouring chunk."""
        cut_lo, cut_hi = self.cut
        near_hi = match.end > len(self.decoded.data) - _EDGE_MARGIN
        return (cut_lo and match.start < _EDGE_MARGIN) or (cut_hi and near_hi)


def _views(decoded: Iterable[Decoded], cost: int, cut: tuple[bool, bool]) -> Iterator[_View]:
    """Views of one window, each costing the window's size against the budget."""
    return (_View(v, cost, cut) for v in decoded)


def _utf16_text(data: bytes) -> list[Decoded]:
    """The whole buffer as UTF-16 text when its start looks like it (NUL in many high bytes,
    few low ones: Windows exports, PowerShell output, with or without a BOM), so that every
    encoding inside it is found, not only plain keys (which the UTF-16 needles find in any
    buffer)."""
    head = data[:TEXT_HEAD]
    if len(head) < 64 or b"\0" not in head:
        return []
    even_nuls, odd_nuls = head[0::2].count(0), head[1::2].count(0)
    units = len(head) // 2
    if odd_nuls >= units // 4 and even_nuls <= units // 16:
        codec = Codec.UTF16LE
    elif even_nuls >= units // 4 and odd_nuls <= units // 16:
        codec = Codec.UTF16BE
    else:
        return []
    return [v for v in utf16_views(data, 0, len(data)) if v.codec is codec]


def _block_starts(window: bytes, lo_index: int, cut: bool, lead: int | None = 0) -> int:
    """The alignments (bits, by character index) of the lines of a window of wrapped base64
    that can start a value of their own: a block's lines are all as long as its first but the
    last, so a line that follows one whose length differs from the line before it (or a blank
    one) and is no shorter than the line after it starts the next block. `cut`: the window
    starts inside a line, whose length then says nothing; but where the window's lines are
    all of one length, that line's whole length is known when `lead` (how much of it is before
    the window) is. Lines of one length (the usual wrapping) are recognised in one strided
    pass; lines in a few stretches of one length each (a value among one-character lines) by
    stretch (_line_stretches); others are listed."""
    first_break = window.find(b"\n")
    if first_break < 0:
        return 0
    length = interior_width(window)
    if length is not None:
        line = lo_index + first_break  # where the second line starts
        starts = 0 if cut else _BIT[line & 3]
        first_length = first_break + (lead or 0)  # the first line's, if `lead` is known
        return starts | (_BIT[(line + length) & 3] if first_length != length else 0)
    if b"\r" in window:
        window = window.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    # Read stretch by stretch only where stretches are long (64 lines each on average, at most
    # 32 of them): lines of varied lengths are listed at once.
    stretches = _line_stretches(window, min(32, 1 + window.count(b"\n") // 64))
    if stretches is None:
        return _block_starts_of_every_line(window, lo_index, cut)
    return _block_starts_of_stretches(stretches, lo_index, cut)


# Base64 characters as `a`, a line break (LF) as itself: a window's lines by their lengths.
_LINE_SHAPE = bytes(c if c == 10 else ord("a") for c in range(256))


def _line_stretches(window: bytes, most: int) -> list[tuple[int, int]] | None:
    """The window's lines (breaks as LF) as stretches of lines of one length: (length, how
    many), when there are at most `most`; else None. Each stretch is measured in strided
    passes over probes that double, so that its lines are never listed one by one."""
    shape = window.translate(_LINE_SHAPE) + b"\n"  # every line, the last too, ends with LF
    size = len(shape)
    stretches: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        if len(stretches) == most:
            return None
        length = shape.find(b"\n", pos) - pos
        step, count, probe = length + 1, 1, 16
        while pos + count * step < size:
            lo = pos + count * step
            hi = min(size, lo + probe * step)
            ends = shape[lo + length : hi : step]  # where the next lines' breaks would be
            same = len(ends) - len(ends.lstrip(b"\n"))
            if shape.count(b"\n", lo, lo + same * step) != same:
                same = _lines_before_a_shorter(shape, lo, step, same)
            count += same
            if same < probe:
                break
            probe *= 2
        stretches.append((length, count))
        pos += count * step
    return stretches


def _lines_before_a_shorter(shape: bytes, lo: int, step: int, most: int) -> int:
    """How many lines of `step - 1` characters come first at `lo`, knowing that the breaks
    where `most` of them would end are there, and that one of them is shorter (a break
    inside): the most lines whose span holds only their own breaks."""
    good, bad = 0, most
    while bad - good > 1:
        middle = (good + bad) // 2
        if shape.count(b"\n", lo, lo + middle * step) == middle:
            good = middle
        else:
            bad = middle
    return good


def _block_starts_of_stretches(stretches: list[tuple[int, int]], lo_index: int, cut: bool) -> int:
    """_block_starts from the window's stretches of lines of one length: in a stretch only its
    first two lines can start a block (a line after two of one length does not), but in a
    stretch of blank lines every line can, all at one character index."""
    first = 2 if cut else 1  # the first line that can start a block: see _block_starts
    bits, line, index = 0, 0, lo_index
    last = len(stretches) - 1
    for at, (length, count) in enumerate(stretches):
        after_length = stretches[at + 1][0] if at < last else 0
        for offset in range(min(count, 2)):
            k = line + offset
            if k < first:
                continue
            if k == 1 and first == 1:
                bits |= _BIT[(index + offset * length) & 3]
                continue
            previous, earlier = _two_lengths_before(stretches, at, offset)
            following = length if offset + 1 < count else after_length
            if (previous != earlier or previous == 0) and length >= following:
                bits |= _BIT[(index + offset * length) & 3]
        if length == 0 and line + 2 >= first and (count >= 4 or (count >= 3 and at == last)):
            bits |= _BIT[index & 3]  # blank lines after two blank ones, but the last
        line += count
        index += count * length
    return bits


def _two_lengths_before(stretches: list[tuple[int, int]], at: int, offset: int) -> tuple[int, int]:
    """The lengths of the two lines before line `offset` (0 or 1) of stretch `at` (which is
    not the window's first or second line)."""
    length = stretches[at][0]
    if offset == 1:
        return length, stretches[at - 1][0]
    previous_length, previous_count = stretches[at - 1]
    if previous_count >= 2:
        return previous_length, previous_length
    return previous_length, stretches[at - 2][0]


def _block_starts_of_every_line(window: bytes, lo_index: int, cut: bool) -> int:
    """_block_starts from every line's length (line breaks as LF), listed in bulk."""
    lengths = list(map(len, window.split(b"\n")))
    line_starts = list(itertools.accumulate(lengths, initial=lo_index))
    first = 2 if cut else 1
    # Line k (from 2 on) follows a line whose length differs from the one before it (a
    # block's last line, a header) or a blank one, and is no shorter than the line after it
    # (a block's first line is full).
    after_an_end = map(
        operator.or_,
        map(operator.ne, lengths[1:-1], lengths[:-2]),
        map(operator.not_, lengths[1:-1]),
    )
    full = map(operator.ge, lengths[2:], [*lengths[3:], 0])
    starts_block = itertools.chain(
        [True] if first == 1 and len(lengths) > 1 else [], map(operator.and_, after_an_end, full)
    )
    new_blocks = itertools.compress(line_starts[first:], starts_block)
    return functools.reduce(operator.or_, map(_BIT.__getitem__, map(_AND_3, new_blocks)), 0)


_BIT = (1, 2, 4, 8)
_SLASH_OR_PLUS = bytes(int(c in b"/+") for c in range(256))


def _after_slash_or_plus(window: bytes, lo: int) -> int:
    """The alignments (bits, by position) of the characters after each `/` or `+` in the
    window at `lo`, where a value can start inside a run: four strided passes."""
    marks = window.translate(_SLASH_OR_PLUS)
    return sum(1 << (lo + first + 1) % 4 for first in range(4) if b"\1" in marks[first::4])


class _Window(NamedTuple):
    lo: int
    hi: int
    lo_is_edge: bool  # the start of the buffer or of the run: what is before is not glued on
    hi_is_edge: bool
    groups: int = 0b1111  # base64: where its hits say groups start (see base64_views)


def _chunks(
    windows: Iterable[_Window], reach: int, size: int
) -> Iterator[tuple[int, int, tuple[bool, bool], int]]:
    """The windows merged where they overlap, cut into chunks that overlap by twice `reach`;
    with each chunk, whether its low and high ends are cut out of longer text."""
    merged: list[_Window] = []
    for window in sorted(windows):
        window = window._replace(hi=min(window.hi, size))
        if merged and window.lo < merged[-1].hi:
            last = merged[-1]._replace(groups=merged[-1].groups | window.groups)
            if window.hi > last.hi:
                last = last._replace(hi=window.hi, hi_is_edge=window.hi_is_edge)
            merged[-1] = last
        else:
            merged.append(window)
    step = _CHUNK - 2 * reach
    for lo, hi, lo_is_edge, hi_is_edge, groups in merged:
        start = lo
        while True:
            end = min(hi, start + _CHUNK)
            yield start, end, (start > lo or not lo_is_edge, end < hi or not hi_is_edge), groups
            if end == hi:
                break
            start += step


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
