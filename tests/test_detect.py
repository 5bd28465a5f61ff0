"""The detector: every key once, in every encoding, at the right place; never a look-alike."""

from __future__ import annotations

import base64
import binascii
import json
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keygen import Planted, every_format, make_key
from keysentry.scanner import detect as detect_module
from keysentry.scanner.detect import detect
from keysentry.scanner.encodings import NEEDLES, Codec, Kind
from keysentry.scanner.findings import Blob, findings_in
from keysentry.scanner.keys import FORMATS, MARKER
from test_keys import near_misses

SEPARATORS = [" ", "\n", "\r\n", "'", '"', "=", ": ", "\t", ",", "(", ")", "`", ";", "<", ">"]
FORMAT_LENGTHS = [(f, n) for f in FORMATS for n in f.half_lengths]
surrounding = st.text(st.characters(blacklist_categories=["Cs"]), max_size=300)


def encodings_of(key: bytes) -> dict[str, tuple[bytes, list[Codec], int | None]]:
    """Each encoding of `key`: the encoded text, the codecs to peel, and where in the encoded
    text the first character that carries the key's bits is (None: not computed here)."""
    b64 = base64.b64encode
    docker_auth = json.dumps({"auths": {"r.io": {"auth": b64(b"user:" + key).decode()}}})
    assigned = b"OPENAI_API_KEY=" + key
    wrapped = b64(assigned)
    return {
        "base64": (b64(key), [Codec.BASE64], 0),
        "base64, shifted by one": (b64(b"=" + key), [Codec.BASE64], 1),
        "base64, shifted by two": (b64(b": " + key), [Codec.BASE64], 2),
        "base64, after three bytes": (b64(b"k: " + key), [Codec.BASE64], 4),
        "base64url": (base64.urlsafe_b64encode(b"k=" + key), [Codec.BASE64], 2),
        "base64 wrapped at 76": (
            b"\n".join(wrapped[i : i + 76] for i in range(0, len(wrapped), 76)),
            [Codec.BASE64],
            20,  # the 15 bytes before the key are 20 characters
        ),
        "docker config in a Kubernetes secret": (
            b64(docker_auth.encode()),
            [Codec.BASE64, Codec.BASE64],
            None,
        ),
        "hex": (binascii.hexlify(key), [Codec.HEX], 0),
        "HEX": (binascii.hexlify(key).upper(), [Codec.HEX], 0),
        "percent": ("".join(f"%{c:02X}" for c in key).encode(), [Codec.PERCENT], 0),
        "percent, lower case": ("".join(f"%{c:02x}" for c in key).encode(), [Codec.PERCENT], 0),
        "json \\u escapes": ("".join(f"\\u{c:04x}" for c in key).encode(), [Codec.ESCAPE], 0),
        "\\x escapes": ("".join(f"\\x{c:02x}" for c in key).encode(), [Codec.ESCAPE], 0),
    }


@pytest.mark.parametrize(("fmt", "length"), FORMAT_LENGTHS, ids=str)
def test_every_format_is_found_once_in_every_encoding(
    fmt: object, length: int, rng: random.Random
) -> None:
    planted = make_key(fmt, length, rng)  # type: ignore[arg-type]
    key = planted.key.encode()
    for name, (encoded, chain, key_at) in encodings_of(key).items():
        data = b"value: " + encoded + b"\nnext: line\n"
        matches = detect(data)
        assert [(m.key, list(m.encoding)) for m in matches] == [(key, chain)], name
        start, end = matches[0].start - 7, matches[0].end - 7
        if key_at is not None:
            assert start == key_at, name
        # The span ends where the group after the key starts: past a line break if one follows.
        assert 0 <= start < end <= len(encoded) + 1, name


def test_keys_in_json_strings_next_to_escapes_are_found(rng: random.Random) -> None:
    planted = every_format(rng)
    for p in planted:
        for text in (f'"a\\n{p.key}\\n"', f'"\\u0022{p.key}\\u0022"', f"?key%3D{p.key}&x=1"):
            assert [m.key.decode() for m in detect(text.encode())] == [p.key], text


@pytest.mark.parametrize(
    ("before", "dash", "after"),
    [
        ("%22", "\\u002d", "%22"),  # a JSON-escaped key inside a URL-encoded quote
        ("\\u0022", "%2D", "\\u0022"),  # a URL-encoded key inside a JSON-escaped quote
        ("50% off \\n", "\\u002d", "\\n100%"),  # a `%` that starts no escape
        ("&#34;", "\\u002d", "%20&#34;"),  # three kinds in one window
        ("\\u0022", "&#45;", "\\u0022 %0A"),
        ("%\n", "%2D", "%\r\n"),  # a `%` before a line break
        ("=%3D\\/", "\\x2d", "\\/==\0"),  # `=`, `%3D` and escaped slashes around
    ],
    ids=repr,
)
def test_a_key_escaped_one_way_is_found_beside_escapes_of_other_kinds(
    before: str, dash: str, after: str, rng: random.Random
) -> None:
    """A window with escapes of several kinds is decoded in bulk, one kind after the other
    (the token decoder, one escape at a time, ran on it before): each key is found once, at
    the span of its escaped text."""
    for planted in every_format(rng)[:6]:
        escaped = planted.key.replace("-", dash)
        text = f"x {before}{escaped}{after} y".encode()
        matches = detect(text)
        assert [m.key.decode() for m in matches] == [planted.key], (before, dash)
        start = text.index(escaped.encode())
        assert (matches[0].start, matches[0].end) == (start, start + len(escaped))


def test_one_occurrence_reached_through_two_layers_is_one_finding(rng: random.Random) -> None:
    """UTF-16 text inside an escaped window also reads, a byte over, as UTF-16 of the other
    parity (where the window sits in a batch of windows decides it): that match of the same
    key is dropped for the one read through fewer layers. Two occurrences stay two, even
    where their encoded spans share a character."""
    key = every_format(rng)[2].key
    (direct,) = detect(b"\x01" + key.encode("utf-16-le") + b"\x01")
    through = direct._replace(
        start=direct.start - 1, end=direct.end - 1, encoding=(Codec.PERCENT, Codec.UTF16BE)
    )
    assert detect_module._once_each([through, direct]) == [direct]
    encoded = base64.b64encode(key.encode() + b" ") * 2
    assert [m.key for m in detect(encoded)] == [key.encode()] * 2


def test_the_marker_needles_cover_each_encoding_and_alignment() -> None:
    assert {n.kind for n in NEEDLES} == set(Kind)
    for shift in range(3):
        once = base64.b64encode(b"x" * shift + MARKER)
        assert any(n.pattern in once for n in NEEDLES if n.kind is Kind.BASE64)


def test_two_keys_on_one_line_are_two_findings(rng: random.Random) -> None:
    a, b = every_format(rng)[2:4]
    assert [m.key.decode() for m in detect(f"{a.key},{b.key}".encode())] == [a.key, b.key]


def test_the_same_key_plain_and_encoded_is_found_at_both_places(rng: random.Random) -> None:
    key = every_format(rng)[2].key.encode()
    matches = detect(key + b"\n" + base64.b64encode(key) + b"\n")
    assert [(m.key, m.encoding) for m in matches] == [(key, ()), (key, (Codec.BASE64,))]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("before", [b"", b"A", b'"', b"\x01", b"\xc3", b"\x00"])
@pytest.mark.parametrize("after", [b"", b"\x00", b"\x00\x00"])
def test_a_utf16_key_at_either_parity_after_any_byte_is_found_once(
    codec: str, before: bytes, after: bytes, rng: random.Random
) -> None:
    """A UTF-16 string one byte into binary data: read from even offsets only, its first
    character merged with the byte before it, and a little-endian key after any byte but NUL
    was lost."""
    key = every_format(rng)[2].key.encode()
    for around in (b"", b"\xfe\xfa" * 20_000):  # at the buffer's ends, and inside binary data
        # A big-endian key right after a letter byte, and followed by a NUL, reads whole as
        # little-endian text one byte over, glued to that letter: not a key (README).
        glued = (codec, before) == ("utf-16-be", b"A") and after.startswith(b"\x00")
        expected = [] if glued else [key]
        matches = detect(around + before + key.decode().encode(codec) + after + around)
        assert [m.key for m in matches] == expected, (codec, before, after, len(around))


def test_a_utf16_key_beside_single_bytes_follows_the_reading_that_holds_it_whole(
    rng: random.Random,
) -> None:
    """Found by an adversarial review: a lone last byte is no character (reading it as one
    glued a digit to a key that ends the file), and a key that one byte order reads glued
    to a letter is not made whole by the other reading merging that letter into a
    non-ASCII character."""
    key = every_format(rng)[2].key
    assert [m.key for m in detect(b"\x01\x02" + key.encode("utf-16-le") + b"4")] == [key.encode()]
    assert detect(b"\x01" + ("\u20acX" + key + " ").encode("utf-16-le")) == []


@pytest.mark.parametrize("escape", ["\\n", "%3D", "\\x22", "\\u0022"])
@pytest.mark.parametrize("before", [b"\xe9", b"\xe9\xe9"])
def test_a_utf16_key_right_after_an_escape_that_starts_a_string_in_binary_data_is_found(
    escape: str, before: bytes, rng: random.Random
) -> None:
    """Found by a differential run: a little-endian string in binary data that starts with
    an escape and then a key (`\\nsk-…`). Read as big-endian one byte over, the escape's
    lead is merged, so that reading sees the key glued to the escape's tail; the key was
    left to it at an odd offset, and lost wherever both readings were searched."""
    key = every_format(rng)[2].key
    text = (escape + key + " ").encode("utf-16-le")
    for around in (b"", b"\xfe\xfa" * 20_000):  # at the buffer's ends, and inside binary data
        matches = detect(around + before + text + around)
        assert [m.key for m in matches] == [key.encode()], (escape, before, len(around))
        assert matches[0].encoding == (Codec.UTF16LE,)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("pad", [0, 1, 2, 3])
def test_a_utf16_key_among_text_of_the_other_parity_in_binary_data_is_located_exactly(
    codec: str, pad: int, rng: random.Random
) -> None:
    """A reading of text in binary data reads the other parity's text as units it does not
    read (0xFF); long runs of those are cut before it is searched, and a key is still
    located at its own bytes."""
    key = every_format(rng)[2].key
    filler = (b"\xe9" + ("x" * 100).encode("utf-16-le")) * 60  # text at both parities
    at = len(filler) + 1 + pad
    data = filler + b"\xe9" * (1 + pad) + key.encode(codec) + b"\xe9" + filler
    [match] = detect(data)
    assert (match.start, match.end, match.key) == (at, at + 2 * len(key), key.encode())


@pytest.mark.parametrize("before", [b"\xe9", b"\xe9\xe9"])
@pytest.mark.parametrize("after", [b"a", b"\xe9", b"\x00\x00"])
def test_an_escaped_key_in_a_little_endian_string_in_binary_data_is_found(
    before: bytes, after: bytes, rng: random.Random
) -> None:
    """Where both byte orders of a string in binary data can hold keys of their own (a
    letter after a little-endian string), the big-endian one is searched for plain keys
    only: the little-endian one still reads the escapes."""
    key = every_format(rng)[2].key
    escaped = key.replace("-", "\\u002d").encode("utf-16-le")
    for around in (b"", b"\xfe\xfa" * 20_000):
        matches = detect(around + before + escaped + after + around)
        assert [(m.key, m.encoding) for m in matches] == [
            (key.encode(), (Codec.UTF16LE, Codec.ESCAPE))
        ], (before, after, len(around))


def test_an_escaped_key_in_a_big_endian_string_keeps_its_span_beside_other_strings(
    rng: random.Random,
) -> None:
    """Found by an adversarial review: an escaped key in a big-endian string that ASCII
    follows reads whole as little-endian one byte over too; where another string nearby
    made the big-endian reading one searched for plain keys only, the key was reported as
    little-endian, one byte off its span."""
    key = every_format(rng)[2].key
    text = ('x="' + key.replace("-", "\\u002d") + '" ok').encode("utf-16-be")
    pad = b"\xe9" * 40_000
    at = len(pad) + 2 * len('x="')
    for other in (b"", b"\xe9" * 100 + b"\xe9\xe9\xe9" + "hello".encode("utf-16-le")):
        [match] = detect(pad + text + other + pad)
        end = at + len(text) - 2 * len('x="" ok')
        assert (match.start, match.end, match.encoding) == (
            at,
            end,
            (Codec.UTF16BE, Codec.ESCAPE),
        ), len(other)


def test_random_bytes_around_markers_raise_no_finding(rng: random.Random) -> None:
    noise = bytes(rng.randrange(256) for _ in range(200_000))
    data = MARKER.join(noise[i : i + 1000] for i in range(0, len(noise), 1000))
    assert detect(data) == []


def seeded_key(seed: int, index: int) -> Planted:
    fmt, length = FORMAT_LENGTHS[index % len(FORMAT_LENGTHS)]
    return make_key(fmt, length, random.Random(seed))


@settings(max_examples=300, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**32),
    index=st.integers(0, len(FORMAT_LENGTHS) - 1),
    before=surrounding,
    after=surrounding,
    left=st.sampled_from(SEPARATORS),
    right=st.sampled_from(SEPARATORS),
)
def test_any_key_in_any_text_is_found_once_at_its_line_and_column(
    seed: int, index: int, before: str, after: str, left: str, right: str
) -> None:
    planted = seeded_key(seed, index)
    prefix = before + left
    text = prefix + planted.key + right + after
    found = findings_in(Blob("f", text.encode()))
    assert len(found) == 1, "expected exactly one finding"
    finding = found[0]
    assert finding.secret.reveal() == planted.key
    assert finding.kind is planted.kind
    assert finding.line == prefix.count("\n") + 1
    assert finding.column == len(prefix) - (prefix.rfind("\n") + 1) + 1


@settings(max_examples=200, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**32),
    before=surrounding,
    after=surrounding,
    left=st.sampled_from(SEPARATORS),
    right=st.sampled_from(SEPARATORS),
)
def test_near_miss_mutations_are_never_found(
    seed: int, before: str, after: str, left: str, right: str
) -> None:
    for name, miss in near_misses(random.Random(seed)).items():
        text = before + left + miss + right + after
        assert detect(text.encode()) == [], name


@settings(max_examples=100, deadline=None, database=None)
@given(seed=st.integers(0, 2**32), index=st.integers(0, len(FORMAT_LENGTHS) - 1))
def test_mutating_one_marker_character_loses_the_key(seed: int, index: int) -> None:
    planted = seeded_key(seed, index)
    at = planted.key.index(MARKER.decode())
    rng = random.Random(seed)
    pos = at + rng.randrange(len(MARKER))
    replacement = rng.choice([c for c in "ABCxyz0189" if c != planted.key[pos]])
    mutated = planted.key[:pos] + replacement + planted.key[pos + 1 :]
    assert detect(f"k = '{mutated}'".encode()) == []


def test_key_shaped_lines_with_halves_of_unequal_lengths_are_skipped_in_bulk(
    rng: random.Random,
) -> None:
    """`sk-`, 21 characters, the marker, 20 more: it passes the placeholder test (six
    stretches in its second half), and a key's halves are as long as each other, so the
    runs that can hold a key are listed without it (it cost a key reading a line: 11 MB/s
    on the benchmark's file) and it is still no key."""
    alphabet = string.ascii_letters + string.digits
    lines = [
        "sk-"
        + "".join(rng.choices(alphabet, k=21))
        + MARKER.decode()
        + "".join(rng.choices(alphabet, k=20))
        for _ in range(200)
    ]
    data = "\n".join(lines).encode()
    runs = detect_module._KeyRuns(data, detect_module._Runs(data, detect_module._KEY_RUNS))
    assert runs.next_from(0) >= len(data) or runs.next_from(0) > data.rfind(MARKER)
    assert detect(data) == []


def test_padded_base64_values_one_a_line_share_a_window(rng: random.Random) -> None:
    """Found by an adversarial review: a `=` ends each line's run, and the line break before
    it made every line's run of base64 and line breaks differ from its run of base64, so
    each line was read as a wrapped value of its own (8 MB/s). A run with base64 on one
    line only is read as values in fields are: one window per 16 KB of lines, and a key in
    one of them is still found."""
    key = every_format(rng)[2].key.encode()
    line = base64.b64encode(b"x" * 39 + MARKER) + b"\n"
    data = line * 1000 + base64.b64encode(b"k=" + key) + b"\n" + line * 1000
    search = detect_module._Pass(data, 0, detect_module._Budget(1 << 40))
    search._search()
    assert search.windows["wrapped"] == []
    assert len(search.windows["stretch"]) <= len(data) // (1 << 14) + 2
    assert [m.key for m in detect(data)] == [key]


@pytest.mark.parametrize("beside", [b"", b"&#32; ", b"&#1; ", b"\\a \\n ", b"100% "], ids=repr)
def test_a_percent_encoded_key_reports_percent_whatever_escapes_sit_beside_it(
    beside: bytes, rng: random.Random
) -> None:
    """Found by the review of the bulk HTML decoder: the codec came from the kinds of escape
    that hold a key's start when a window was read in bulk, and from every token when the
    token decoder read it (an octal or bell escape, a reference to a control character), so
    text beside a key changed its label. It comes from the key's start either way."""
    key = every_format(rng)[0].key
    (match,) = detect(b"x = " + beside + key.replace("-", "%2D").encode() + b";")
    assert (match.key.decode(), match.encoding) == (key, (Codec.PERCENT,))
