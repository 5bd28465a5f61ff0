"""Findings: exact line and column in the decoded text, offsets, allow markers."""

from __future__ import annotations

import random

import pytest

from keygen import key_of
from keysentry.scanner.findings import Blob, findings_in, fingerprint
from keysentry.scanner.keys import KeyKind


def one(data: bytes, inline_allow: bool = True) -> tuple[int, int, int, bool]:
    (finding,) = findings_in(Blob("f", data), inline_allow)
    return finding.line, finding.column, finding.offset, finding.binary


def test_crlf_lines_count_like_lf_lines(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    data = f"a = 1\r\nb = 2\r\n  KEY = '{key}'\r\n".encode()
    assert one(data)[:2] == (3, 10)


def test_columns_count_characters_not_bytes(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    data = f"# héllo wörld\nnäme = «{key}»\n".encode()
    line, column, offset, _ = one(data)
    assert (line, column) == (2, 9)
    assert data[offset:].startswith(key.encode())


def test_invalid_utf8_before_a_key_counts_as_one_character_each(rng: random.Random) -> None:
    key = key_of(KeyKind.LEGACY_USER, rng).key
    data = b"\xc3(\xfa = '" + key.encode() + b"'\n"  # 7 characters before the key
    assert one(data)[1] == 8


def test_a_file_that_only_looks_like_utf16_is_scanned_as_bytes(rng: random.Random) -> None:
    key = key_of(KeyKind.LEGACY_USER, rng).key
    assert one(b"\xff\xfe = '" + key.encode() + b"'\n")[:2] == (1, 7)


def test_utf16_files_with_a_bom_are_decoded(rng: random.Random) -> None:
    key = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    text = f"first\nsecond = '{key}'\n"
    for codec in ("utf-16", "utf-16-be"):
        data = text.encode(codec)
        if codec == "utf-16-be":
            data = b"\xfe\xff" + data
        line, column, offset, binary = one(data)
        assert (line, column, binary) == (2, 11, False)
        assert (
            data[offset:]
            .decode(codec.replace("utf-16", "utf-16-le") if codec == "utf-16" else codec)
            .startswith(key)
        )


def test_binary_files_report_the_byte_offset(rng: random.Random) -> None:
    key = key_of(KeyKind.ADMIN, rng).key.encode()
    data = bytes(range(256)) * 10 + b"\0" + key + b"\0" + bytes(range(256))
    _, _, offset, binary = one(data)
    assert binary
    assert offset == 2561


def test_a_key_in_a_ten_megabyte_minified_line(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    filler = "var a=1;" * (10 * 1024 * 1024 // 8)
    data = f'{filler}var k="{key}";{filler}\n'.encode()
    assert one(data)[:2] == (1, len(filler) + 8)


@pytest.mark.parametrize(
    "marker", ["# keysentry:allow", "// gitleaks:allow", "# pragma: allowlist secret"]
)
def test_inline_allow_markers_on_the_same_line(marker: str, rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (finding,) = findings_in(Blob("f", f"k = '{key}'  {marker}\n".encode()))
    assert finding.inline_allowed
    (finding,) = findings_in(Blob("f", f"k = '{key}'  {marker}\n".encode()), inline_allow=False)
    assert not finding.inline_allowed


def test_an_allow_marker_on_another_line_does_not_allow(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (finding,) = findings_in(Blob("f", f"# keysentry:allow\nk = '{key}'\n".encode()))
    assert not finding.inline_allowed


def test_allowlist_nextline_pragma_allows_the_next_line(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    data = f"x = 1\n# pragma: allowlist nextline secret\nk = '{key}'\n".encode()
    (finding,) = findings_in(Blob("f", data))
    assert finding.inline_allowed


def test_fingerprints_depend_on_the_key_only(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    a = findings_in(Blob("a.py", f"k = '{key}'\n".encode()))[0]
    b = findings_in(Blob("b/c.env", f"\n\n\nOPENAI={key}\n".encode()))[0]
    assert a.fingerprint == b.fingerprint == fingerprint(key)
    assert fingerprint(key) != fingerprint(key_of(KeyKind.PROJECT, rng).key)
    assert key not in a.fingerprint


def test_a_fingerprint_is_hmac_sha256_under_the_fixed_key_as_every_baseline_holds_it(
    rng: random.Random,
) -> None:
    import hashlib
    import hmac
    import subprocess
    import sys

    from keysentry.scanner.findings import _FINGERPRINT_KEY

    for kind in KeyKind:
        for _ in range(20):
            key = key_of(kind, rng).key
            expected = hmac.new(_FINGERPRINT_KEY, key.encode(), hashlib.sha256).hexdigest()
            assert fingerprint(key) == expected[:32]
    assert fingerprint("") == hmac.new(_FINGERPRINT_KEY, b"", hashlib.sha256).hexdigest()[:32]
    probe = (
        "import sys; from keysentry.scanner.findings import fingerprint; fingerprint('x'); "
        "print(sorted({'hashlib', 'hmac', '_hashlib'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]"  # no OpenSSL loaded for it
