"""`keysentry baseline import`: the accepted findings of detect-secrets, betterleaks and gitleaks
become keysentry fingerprints, and what cannot be mapped is said entry by entry.

detect-secrets and betterleaks run for real (both are test dependencies); gitleaks' own formats
(`.gitleaksignore` and its JSON report) are written as gitleaks documents them.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import GitRepo
from keygen import key_of
from keysentry.scanner.findings import fingerprint
from keysentry.scanner.keys import KeyKind

sys.path.insert(0, str(Path(__file__).parent / "adversarial"))
from leaks import assert_nowhere


def _betterleaks() -> Path:
    betterleaks = pytest.importorskip("betterleaks")
    return Path(betterleaks.__file__).parent / "bin" / "betterleaks"


@pytest.fixture
def leaked(gitrepo: GitRepo, rng: random.Random) -> tuple[GitRepo, list[str], str]:
    """A repository whose first commit adds two keys; returns it, the keys and the commit."""
    keys = [key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.LEGACY_USER, rng).key]
    commit = gitrepo.commit(
        "add keys",
        **{"app.py": f'import os\nKEY = "{keys[0]}"\n', "old.env": f"OPENAI_API_KEY={keys[1]}\n"},
    )
    return gitrepo, keys, commit


def _baseline(path: Path) -> dict[str, Any]:
    fingerprints: dict[str, Any] = json.loads(path.read_text())["fingerprints"]
    return fingerprints


def test_a_detect_secrets_baseline_made_by_detect_secrets_is_imported(
    leaked: tuple[GitRepo, list[str], str], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gitrepo, keys, _ = leaked
    made = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan"],
        cwd=gitrepo.path,
        capture_output=True,
        text=True,
        check=True,
    )
    (gitrepo.path / ".secrets.baseline").write_text(made.stdout)
    monkeypatch.chdir(gitrepo.path)
    result = cli("baseline", "import", ".secrets.baseline")
    assert result.code == 0, result.err
    assert set(_baseline(gitrepo.path / ".keysentry-baseline.json")) == {
        fingerprint(k) for k in keys
    }
    assert cli("scan", "--baseline", ".keysentry-baseline.json", ".").code == 0
    assert_nowhere(
        keys[0], result.out, result.err, under=[gitrepo.path / ".keysentry-baseline.json"]
    )
    assert_nowhere(keys[1], result.out, result.err)


@pytest.mark.parametrize("redact", [False, True])
def test_a_betterleaks_report_is_imported_with_or_without_its_secrets(
    redact: bool, leaked: tuple[GitRepo, list[str], str], cli: Any, tmp_path: Path
) -> None:
    gitrepo, keys, _ = leaked
    report = tmp_path / "report.json"
    command = [str(_betterleaks()), "git", str(gitrepo.path), "-o", str(report)]
    command += ["--exit-code", "0", "-l", "error", "--no-banner", "-s"]
    subprocess.run(command + (["--redact"] if redact else []), check=True, capture_output=True)
    out = tmp_path / "ks.json"
    result = cli(
        "baseline", "import", str(report), "--baseline", str(out), "--root", str(gitrepo.path)
    )
    assert result.code == 0, result.err
    assert set(_baseline(out)) == {fingerprint(k) for k in keys}
    assert "betterleaks report" in result.err


def test_betterleaks_value_fingerprints_are_matched_against_the_whole_history(
    leaked: tuple[GitRepo, list[str], str], cli: Any, tmp_path: Path
) -> None:
    import hashlib

    gitrepo, keys, _ = leaked
    gitrepo.commit("remove the key", **{"app.py": "import os\n"})
    ignore = tmp_path / ".betterleaksignore"
    digests = [hashlib.sha256(k.encode()).hexdigest() for k in keys]
    ignore.write_text("\n".join([*digests, "0" * 64]) + "\n")
    out = tmp_path / "ks.json"
    result = cli(
        "baseline", "import", str(ignore), "--baseline", str(out), "--root", str(gitrepo.path)
    )
    assert set(_baseline(out)) == {fingerprint(k) for k in keys}
    assert result.code == 1  # one fingerprint matches no key: said, and not a clean import
    assert "line 3: no OpenAI key under" in result.err


def test_gitleaksignore_entries_are_read_back_from_their_commit_and_line(
    leaked: tuple[GitRepo, list[str], str], cli: Any, tmp_path: Path
) -> None:
    gitrepo, keys, commit = leaked
    gitrepo.commit("rewrite", **{"app.py": "# nothing here\n"})
    ignore = tmp_path / ".gitleaksignore"
    ignore.write_text(
        f"{commit}:app.py:openai-api-key:2\n"
        f"{commit}:old.env:generic-api-key:1\n"
        f"{commit}:app.py:aws-access-token:1\n"
        f"{'f' * 40}:app.py:openai-api-key:2\n"
        f"{commit}:app.py:openai-api-key:1\n"
    )
    out = tmp_path / "ks.json"
    result = cli(
        "baseline", "import", str(ignore), "--baseline", str(out), "--root", str(gitrepo.path)
    )
    assert set(_baseline(out)) == {fingerprint(k) for k in keys}
    assert "line 3: rule aws-access-token is not an OpenAI key rule" in result.err
    assert f"line 4: {'f' * 12}:app.py is not in this repository" in result.err
    assert "line 5: no OpenAI key at app.py:1 matches it" in result.err
    assert result.code == 1
    assert_nowhere(keys[0], result.out, result.err, under=[out])


def test_a_redacted_gitleaks_report_is_mapped_by_commit_file_and_line(
    leaked: tuple[GitRepo, list[str], str], cli: Any, tmp_path: Path
) -> None:
    gitrepo, keys, commit = leaked
    report = tmp_path / "gitleaks.json"
    report.write_text(
        json.dumps(
            [
                {
                    "RuleID": "openai-api-key",
                    "File": "app.py",
                    "Commit": commit,
                    "StartLine": 2,
                    "Secret": "REDACTED",
                    "Fingerprint": f"{commit}:app.py:openai-api-key:2",
                },
                {
                    "RuleID": "openai-api-key",
                    "File": "old.env",
                    "Commit": commit,
                    "StartLine": 1,
                    "Secret": keys[1],
                    "Fingerprint": f"{commit}:old.env:openai-api-key:1",
                },
            ]
        )
    )
    out = tmp_path / "ks.json"
    result = cli(
        "baseline", "import", str(report), "--baseline", str(out), "--root", str(gitrepo.path)
    )
    assert result.code == 0, result.err
    assert set(_baseline(out)) == {fingerprint(k) for k in keys}


def test_importing_adds_to_an_existing_baseline_and_a_stranger_file_is_one_line(
    leaked: tuple[GitRepo, list[str], str], cli: Any, tmp_path: Path
) -> None:
    gitrepo, keys, commit = leaked
    out = tmp_path / "ks.json"
    first = tmp_path / "first"
    first.write_text(f"{commit}:app.py:openai-api-key:2\n")
    second = tmp_path / "second"
    second.write_text(f"{commit}:old.env:openai-api-key:1\n")
    root = ["--baseline", str(out), "--root", str(gitrepo.path)]
    assert cli("baseline", "import", str(first), *root).code == 0
    assert cli("baseline", "import", str(second), *root).code == 0
    assert set(_baseline(out)) == {fingerprint(k) for k in keys}
    stranger = tmp_path / "stranger.json"
    stranger.write_text('{"something": "else"}')
    result = cli("baseline", "import", str(stranger), *root)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "not a detect-secrets baseline" in result.err
