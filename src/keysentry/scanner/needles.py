"""The marker `T3BlbkFJ` and the literal forms it takes in a file: the needles of the detector's
first search, and the one test that says a buffer needs no more than that search.

Kept apart from `encodings` and `detect`, and free of `enum`, `re` and `typing`, because the
pre-commit hook asks this question of every file of every commit (`precheck`): on Python 3.11
those three modules alone cost a start-up 15 ms, more than the rest of a clean commit's scan.
"""

from __future__ import annotations

import binascii

import ahocorasick_rs

MARKER = b"T3BlbkFJ"  # base64 for "OpenAI": in every OpenAI key (keys.py)

# What a hit asks for (`encodings.Kind` names them; `detect` has one handler per kind).
PLAIN, BASE64, HEX, ESCAPED, UTF16 = range(5)

# The head of a buffer in which a NUL may make `detect` read the whole buffer as UTF-16 text.
TEXT_HEAD = 8192


def base64_forms(text: bytes) -> list[tuple[bytes, int]]:
    """The characters of base64(text) that do not depend on the bytes around it, for each of
    the three alignments `text` can have (standard and URL-safe alphabets), with the phase of
    their first character."""
    forms = []
    for shift in range(3):
        encoded = binascii.b2a_base64(b"\0" * shift + text, newline=False)
        first = -(-8 * shift // 6)  # the first character made only of `text`'s bits
        last = 8 * (shift + len(text)) // 6
        stable = encoded[first:last]
        forms.append((stable, first % 4))
        urlsafe = stable.translate(bytes.maketrans(b"+/", b"-_"))
        if urlsafe != stable:
            forms.append((urlsafe, first % 4))
    return forms


def _table() -> tuple[tuple[bytes, int, int], ...]:
    """(pattern, kind, phase) of every needle; phase: where a base64 pattern's first character
    sits in its 4-character group."""
    needles = [(MARKER, PLAIN, 0)]
    once = base64_forms(MARKER)
    # Base64 inside base64: a docker config's `auth` inside a Kubernetes `.dockerconfigjson`.
    twice = [form for p1, _ in once for form in base64_forms(p1)]
    full = once + twice
    needles += [(p, BASE64, phase) for p, phase in full]
    # Wrapped base64 can break a line inside an encoded marker; one of its halves is then
    # whole on one line. The halves come after the full forms: at the same position the
    # leftmost-first search prefers the full form.
    for form, phase in full:
        middle = len(form) // 2
        needles.append((form[:middle], BASE64, phase))
        needles.append((form[middle:], BASE64, (phase + middle) % 4))
    hex_lower = binascii.hexlify(MARKER)
    needles += [(hex_lower, HEX, 0), (hex_lower.upper(), HEX, 0)]
    # Wholly escaped: `T3B` is all digits once escaped; the fourth character (`l`, 0x6c) may be
    # written in either case, so the needle stops before its last digit.
    for pattern in (
        b"%54%33%42%6",
        b"\\u0054\\u0033\\u0042\\u006",
        b"\\x54\\x33\\x42\\x6",
        b"&#84;&#51;&#66;&#108;",
        b"&#x54;&#x33;&#x42;&#x6",
        b"&#X54;&#X33;&#X42;&#X6",
    ):
        needles.append((pattern, ESCAPED, 0))
    wide = [MARKER.decode().encode(codec) for codec in ("utf-16-le", "utf-16-be")]
    needles += [(pattern, UTF16, 0) for pattern in wide]
    unique = {pattern: (pattern, kind, phase) for pattern, kind, phase in needles}
    return tuple(unique.values())


TABLE = _table()
PATTERNS = [pattern for pattern, _, _ in TABLE]
# Leftmost-first enables the library's SIMD prefilter (about 10x faster than the standard match
# kind here).
LEFTMOST = ahocorasick_rs.MATCHKIND_LEFTMOST_FIRST
SEARCH = ahocorasick_rs.BytesAhoCorasick(PATTERNS, matchkind=LEFTMOST)


def nothing_to_find(data: bytes) -> bool:
    """Whether `detect.search(data)` is settled by its first search: no needle anywhere, and
    no NUL in the head (so the buffer cannot be taken for UTF-16 text). Then it finds no key."""
    return data.find(b"\0", 0, TEXT_HEAD) < 0 and not SEARCH.find_matches_as_indexes(data)
