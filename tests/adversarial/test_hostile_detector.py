"""Hostile file contents against the detector: a file built of encoded markers must cost
linear time, hide no key, and never leave the scan reported clean when it was not searched."""

from __future__ import annotations

import base64
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from leaks import assert_nowhere

from keygen import ALNUM_CHARS, BASE64URL_CHARS, half, key_of, make_key
from keysentry.scanner import detect as detector
from keysentry.scanner.findings import Blob, IncompleteBlob, findings_in
from keysentry.scanner.keys import FORMATS, MARKER, KeyKind

HOSTILE_UNITS = [
    b"%54%33%42%6c",
    b"\\x54\\x33\\x42\\x6c",
    b"\\u0054\\u0033\\u0042\\u006c",
    base64.b64encode(MARKER)[:10],
    base64.b64encode(base64.b64encode(MARKER))[:13],
    MARKER,
    MARKER.decode().encode("utf-16-le"),
]


@pytest.mark.parametrize("unit", HOSTILE_UNITS, ids=repr)
def test_a_key_among_a_megabyte_of_encoded_markers_is_found_in_linear_time(
    unit: bytes, tmp_path: Path, rng: random.Random
) -> None:
    """256 KB of one encoded marker used to take seconds (0.5 ms per occurrence); now a
    megabyte of it, with a real key in the middle, scans in well under a second."""
    key = key_of(KeyKind.PROJECT, rng).key
    filler = unit * (512 * 1024 // len(unit))
    target = tmp_path / "hostile.txt"
    target.write_bytes(filler + f'\nk = "{key}"\n'.encode() + filler)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "keysentry", "scan", "--quiet", str(target)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 1, done.stderr
    assert done.stdout.count("\n") == 1  # the one key, nothing made up of the filler
    assert elapsed < 10  # seconds before; the detector's own time is about 20 ms
    assert_nowhere(key, done.stdout, done.stderr)


def test_a_blob_past_the_decoding_budget_is_incomplete_with_what_was_found(
    monkeypatch: pytest.MonkeyPatch, rng: random.Random
) -> None:
    """The budget is a safety net real input never reaches; when hostile input does reach it
    the blob is reported not fully scanned, and the keys already found are kept."""
    key = key_of(KeyKind.ADMIN, rng).key
    monkeypatch.setattr(detector, "BUDGET_PER_BYTE", 0)
    monkeypatch.setattr(detector, "BUDGET_FLOOR", 100)
    # Base64 that starts like a key (`sk-`), so that its windows are decoded.
    data = f"k = '{key}'\n".encode() + base64.b64encode(b"sk-" + MARKER * 2000) + b"\n"
    with pytest.raises(IncompleteBlob) as raised:
        findings_in(Blob("f", data))
    assert [f.secret.reveal() for f in raised.value.findings] == [key]
    assert "not fully scanned" in str(raised.value)
    assert_nowhere(key, str(raised.value), raised.value.reason)


PLACEHOLDER_LINE = b"sk-proj-" + b"a" * 40 + MARKER + b"b" * 40


def _near_miss_lines(rng: random.Random, count: int) -> list[bytes]:
    """Key-shaped lines that are no key: placeholder halves (the benchmark's), a random second
    half behind a placeholder first one, another vendor's prefix, halves of unequal length."""
    shapes = [
        lambda: PLACEHOLDER_LINE,
        lambda: b"sk-proj-" + b"a" * 40 + MARKER + half(rng, 40, BASE64URL_CHARS).encode(),
        lambda: b"sk-ant-" + half(rng, 20, ALNUM_CHARS).encode() + MARKER + b"x" * 20,
        lambda: b"sk-" + half(rng, 20, ALNUM_CHARS).encode() + MARKER + b"abcabcabcabcabcabcab",
        lambda: b"sk-proj-" + half(rng, 58, ALNUM_CHARS).encode() + MARKER + b"Zz" * 28,
    ]
    return [rng.choice(shapes)() for _ in range(count)]


def test_keys_among_key_shaped_near_misses_one_a_line_are_each_found(
    rng: random.Random,
) -> None:
    """Lines that pass a key's anatomy but are no key are skipped in bulk (`detect._KeyRuns`),
    a region at a time: every key among them is still found, wherever the regions are cut,
    behind an escape's tail, and with a second half made of only six stretches of one
    character (six distinct characters are the least a key's half has)."""
    # The legacy format (`sk-`, halves of 20), its second half six stretches of one character.
    six_key = make_key(FORMATS[0], 20, rng).key[:-20] + "".join(sorted("abcdef" + "f" * 14))
    keys = [key_of(kind, rng).key for kind in (KeyKind.PROJECT, KeyKind.ADMIN)] + [six_key]
    lines = _near_miss_lines(rng, 3001)
    planted = {
        10: f"k = {keys[0]}",  # after ten near-misses
        680: f'"\\u0022{keys[1]}\\u0022"',  # past 64 KB; a JSON escape's tail before `sk-`
        1400: six_key,
        2000: keys[1].replace("-", "\\u002d"),  # escaped where a JSON serialiser escapes
        2999: keys[0],
    }
    for at, line in planted.items():  # between placeholders, which are never read
        lines[at - 1 : at + 2] = [PLACEHOLDER_LINE, line.encode(), PLACEHOLDER_LINE]
    found = detector.detect(b"\n".join(lines))
    texts = [m.key.decode() for m in found]
    # Compared as indexes into `keys`, so that a failure never shows a key.
    assert [keys.index(t) if t in keys else None for t in texts] == [0, 1, 2, 1, 0]
    encoded = b"\n".join(base64.b64encode(line) for line in lines)
    in_base64 = detector.detect(encoded)
    in_base64_keys = [m.key.decode() for m in in_base64]
    assert [keys.index(k) if k in keys else None for k in in_base64_keys] == [0, 1, 2, 1, 0]
    for key in keys:
        assert_nowhere(key, repr(found), repr(in_base64))


@pytest.fixture
def token_decoder_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Where each window the token decoder reads starts, as the detector runs."""
    from keysentry.scanner import encodings

    runs: list[int] = []
    original = encodings._unescape_by_tokens

    def counted(window: bytes, lo: int, codec: encodings.Codec) -> encodings.Decoded:
        runs.append(lo)
        return original(window, lo, codec)

    monkeypatch.setattr(encodings, "_unescape_by_tokens", counted)
    return runs


def test_a_file_of_keys_written_with_escapes_is_tokenized_once_per_window(
    token_decoder_runs: list[int], rng: random.Random
) -> None:
    """Found by an adversarial review: every key in an escaped window re-ran the token
    decoder over the whole window (up to 64 KB), so a file of JSON-escaped keys cost its
    size per key (0.1 MB/s). The decoder now runs once per window, and every key is found."""
    keys = [make_key(FORMATS[2], 58, rng).key for _ in range(400)]
    data = "".join('"' + key.replace("-", "\\u002d") + '",\n' for key in keys).encode()
    assert [m.key.decode() for m in detector.detect(data)] == keys
    assert len(token_decoder_runs) < 10  # one per window: about 62 KB of escaped keys


@pytest.mark.parametrize(
    "unit",
    [
        b"sk\\u002d" + MARKER + b" 100% ",  # a `%` that starts no escape
        b"sk\\u002d" + MARKER + b" %41\\n",  # both kinds of escape
        b"sk\\u002d" + MARKER + b" \\q\\",  # a backslash that starts no escape
        b"sk%2D" + MARKER + b" \\u0022\0",  # a NUL and a JSON escape among percent-escapes
        b"\xe9" + ("sk\\u002d" + MARKER.decode() + " % ").encode("utf-16-le"),
        b"sk&#45;" + MARKER + b" ",  # HTML references
        b"&#115;&#107;&#45;&#84;&#51;&#66;&#108; ",
        # Markup, entities, a `&#` that starts no reference, a carriage return, a control
        # character, a reference above 0x7F: all read as the token decoder reads them.
        b"&#115;&#107;&#45;" + MARKER + b" <b>&amp; &#0065; &#x; \r\n\x01 &#233; ",
        b"sk&#45;" + MARKER + b" &#233;\xe9 &#34;q %41\\n",  # and escapes of the other kinds
    ],
    ids=repr,
)
def test_escaped_key_starts_beside_other_escapes_are_decoded_in_bulk(
    unit: bytes, token_decoder_runs: list[int], rng: random.Random
) -> None:
    """Found by a review of the benchmark: a window holding escapes of two kinds, or a `%` or
    backslash that starts no escape, was decoded one token at a time (17-32 MB/s for a
    file of escaped key starts). It is now decoded in bulk, one kind after the other: the
    token decoder runs only to place a key found, and keys among such text are found."""
    filler = unit * (200_000 // len(unit))
    assert detector.search(filler) == detector.Detection([], None)
    assert token_decoder_runs == []
    key = key_of(KeyKind.PROJECT, rng).key
    found = detector.detect(filler + f'\n"{key.replace("-", "%2D")}"\n'.encode() + filler)
    assert [m.key.decode() for m in found] == [key]


def test_markup_beside_html_references_is_read_as_text_never_as_markup(
    rng: random.Random,
) -> None:
    """HTML references are decoded by expat, an XML parser, with the window as an element's
    text: markup in a file must stay text. An entity declared in the file and used beside
    escaped key starts is not expanded (here its expansion would complete a key), and a
    billion-laughs nest of them costs nothing."""
    key = key_of(KeyKind.PROJECT, rng).key
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    doctype = f'<!DOCTYPE a [<!ENTITY h "{key[:12]}"><!ENTITY l0 "lol">{laughs}]>'
    unit = f"<a>&h;{key[12:]} sk&#45;{MARKER.decode()} &l9;</a>\n"
    data = (doctype + unit * 2000).encode()
    started = time.process_time()
    assert detector.search(data) == detector.Detection([], None)
    assert time.process_time() - started < 5
