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

from keygen import key_of
from keysentry.scanner import detect as detector
from keysentry.scanner.findings import Blob, IncompleteBlob, findings_in
from keysentry.scanner.keys import MARKER, KeyKind

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
    data = f"k = '{key}'\n".encode() + base64.b64encode(MARKER * 2000) + b"\n"
    with pytest.raises(IncompleteBlob) as raised:
        findings_in(Blob("f", data))
    assert [f.secret.reveal() for f in raised.value.findings] == [key]
    assert "not fully scanned" in str(raised.value)
    assert_nowhere(key, str(raised.value), raised.value.reason)
