"""A failing test that compares keys still prints no key."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from keygen import key_of
from keysentry.scanner.keys import KeyKind

FAILING = """
import random, sys
sys.path.insert(0, {tests!r})
from keygen import key_of
from keysentry.scanner.keys import KeyKind

def test_compares_two_keys():
    rng = random.Random(7)
    a, b = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    print("printed", a)
    assert a == b
"""


def test_a_failing_comparison_of_keys_shows_them_redacted(tmp_path: Path) -> None:
    tests = str(Path(__file__).parent)
    (tmp_path / "test_inner.py").write_text(FAILING.format(tests=tests))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "redact_failures",
            "-p",
            "no:cacheprovider",
            "-q",
            str(tmp_path / "test_inner.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "PYTHONPATH": tests},
    )
    assert done.returncode == 1
    rng = random.Random(7)
    keys = [key_of(KeyKind.PROJECT, rng).key for _ in range(2)]
    output = done.stdout + done.stderr
    assert "sk-proj-..." in output
    assert not any(key in output for key in keys)
    assert not any(key[8:16] in output for key in keys)  # nor pytest's shortened form


INNER = """
import random, sys
sys.path.insert(0, {tests!r})
import pytest
from keygen import key_of
from keysentry.scanner.keys import KeyKind

KEY = key_of(KeyKind.PROJECT, random.Random(7)).key
"""

PARAMETRIZED = """
@pytest.mark.parametrize("leaky", [KEY, KEY.encode()])
def test_parametrized_with_a_key(leaky):
    assert leaky == "x"

@pytest.mark.parametrize("leaky", [KEY.encode()], ids=["bytes"])
def test_bytes_diff_split_over_lines(leaky):
    assert leaky == b"x"
"""

NAMED_BY_THE_KEY = """
@pytest.mark.parametrize("leaky", [KEY], ids=str)
def test_named_by_its_key(leaky):
    pass

@pytest.mark.parametrize("leaky", [pytest.param(KEY, id=KEY)])
def test_given_its_key_as_id(leaky):
    pass
"""


def run_inner(tmp_path: Path, body: str) -> str:
    tests = str(Path(__file__).parent)
    (tmp_path / "test_inner.py").write_text(INNER.format(tests=tests) + body)
    xml = tmp_path / "junit.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "redact_failures",
            "-p",
            "no:cacheprovider",
            "-vv",
            "-rA",
            f"--junitxml={xml}",
            "-o",
            "parametrize_long_str_id_strategy=full",
            str(tmp_path / "test_inner.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "PYTHONPATH": tests},
    )
    key = key_of(KeyKind.PROJECT, random.Random(7)).key
    output = done.stdout + done.stderr + (xml.read_text() if xml.exists() else "")
    for start in range(8, len(key) - 8, 4):
        assert key[start : start + 8] not in output  # no piece of it beyond the redacted form
    return output


def test_a_test_parametrized_with_a_key_shows_it_in_no_id_argument_or_diff(
    tmp_path: Path,
) -> None:
    output = run_inner(tmp_path, PARAMETRIZED)
    assert "3 failed" in output
    assert "test_parametrized_with_a_key[sk-proj-...JCk3_0]" in output
    assert "leaky = 'sk-proj-...JCk3'" in output
    assert "test_bytes_diff_split_over_lines[bytes]" in output


def test_an_id_given_explicitly_that_holds_a_key_is_refused_redacted(tmp_path: Path) -> None:
    output = run_inner(tmp_path, NAMED_BY_THE_KEY)
    assert "test ids that hold a key" in output
    assert "test_named_by_its_key[sk-proj-...JCk3]" in output
    assert "passed" not in output
