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
        [sys.executable, "-m", "pytest", "-p", "redact_failures", "-p", "no:cacheprovider",
         "-q", str(tmp_path / "test_inner.py")],
        capture_output=True, text=True, cwd=tmp_path, check=False,
        env={**os.environ, "PYTHONPATH": tests},
    )  # fmt: skip
    assert done.returncode == 1
    rng = random.Random(7)
    keys = [key_of(KeyKind.PROJECT, rng).key for _ in range(2)]
    output = done.stdout + done.stderr
    assert "sk-proj-..." in output
    assert not any(key in output for key in keys)
    assert not any(key[8:16] in output for key in keys)  # nor pytest's shortened form
