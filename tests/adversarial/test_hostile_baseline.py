"""Hostile baselines of other scanners imported with `keysentry baseline import`: file names,
rules and labels in them are someone else's text, and may hold a key or control characters.

Every test ends with `assert_nowhere`: the key is in no output and no file written.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from leaks import assert_nowhere

from keygen import key_of
from keysentry.scanner.keys import KeyKind


def test_names_in_an_imported_baseline_are_said_redacted_and_on_one_line(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    detect_secrets = tmp_path / ".secrets.baseline"
    name = f"a\x1b[2J\nkeysentry: forged {key}.py"
    entry = {"type": "OpenAI Token", "hashed_secret": "0" * 40, "line_number": 1}
    detect_secrets.write_text(json.dumps({"version": "1.5.0", "results": {name: [entry]}}))
    gitleaks = tmp_path / "gitleaks.json"
    finding = {
        "RuleID": "openai-api-key",
        "File": name,
        "StartLine": 1,
        "Commit": "",
        "Fingerprint": f"{name}:openai-api-key:1",
        "Secret": "REDACTED",
    }
    gitleaks.write_text(json.dumps([finding]))
    baseline = tmp_path / "baseline.json"
    result = cli(
        "baseline",
        "import",
        "--baseline",
        str(baseline),
        "--root",
        str(tmp_path),
        str(detect_secrets),
        str(gitleaks),
    )
    assert result.code == 1  # neither entry can be mapped: their files do not exist
    lines = result.err.splitlines()
    assert sum(line.startswith("keysentry:   not mapped: ") for line in lines) == 2
    assert all(line.startswith("keysentry: ") for line in lines)
    assert "sk-proj-..." in result.err and "\x1b" not in result.err
    assert_nowhere(key, result.out, result.err, under=[baseline])
