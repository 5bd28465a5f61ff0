"""`keysentry scan` end to end: exit codes, formats, suppression, bad input."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import console_script
from keygen import key_of
from keysentry.scanner.keys import KeyKind
from planted import plant_tree


def test_every_planted_key_in_every_encoding_is_found(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    planted = plant_tree(tmp_path / "tree", rng)
    result = cli("scan", "--format", "json", "--show-secrets", str(tmp_path / "tree"))
    assert result.code == 1
    found = result.json()["findings"]
    per_key = {p.key: 0 for p in planted}
    for f in found:
        per_key[f["secret"]] += 1
    # plain, base64, percent, hex, UTF-16, binary and \\u-escaped JSON: seven places per key
    assert per_key == {p.key: 7 for p in planted}
    assert {f["kind"] for f in found} == {p.kind.value for p in planted}


def test_exit_code_is_zero_on_a_clean_tree(tmp_path: Path, cli: Any) -> None:
    (tmp_path / "a.py").write_text("print('hello')\n")
    result = cli("scan", str(tmp_path))
    assert (result.code, result.out) == (0, "")
    assert "0 findings; 1 files" in result.err


def test_a_nonexistent_path_is_exit_code_two_with_one_line(tmp_path: Path, cli: Any) -> None:
    result = cli("scan", str(tmp_path / "missing"))
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"keysentry: error: {tmp_path / 'missing'}: no such file or directory"
    ]


def test_bad_options_are_exit_code_two(cli: Any) -> None:
    assert cli("scan", "--format", "xml").code == 2
    assert cli("scan", "--max-file-size", "lots").code == 2
    assert cli("scan", "--update-baseline").code == 2


def test_stdin_is_scanned_with_dash(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    done = subprocess.run(
        [sys.executable, "-m", "keysentry", "scan", "-", "--format", "jsonl"],
        input=f"first\nexport OPENAI_API_KEY={key}\n".encode(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 1
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert (record["path"], record["line"], record["column"]) == ("<stdin>", 2, 23)
    assert key.encode() not in done.stdout + done.stderr


def test_gitignored_files_are_skipped_unless_asked(
    repo: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (repo / ".gitignore").write_text(".env\n")
    (repo / ".env").write_text(f"OPENAI_API_KEY={key}\n")
    monkeypatch.chdir(repo)
    assert cli("scan", ".").code == 0
    result = cli("scan", "--no-gitignore", ".")
    assert result.code == 1
    assert result.out.startswith(".env:1:16: OpenAI project key sk-proj-...")


def test_inline_allow_and_its_ci_override(tmp_path: Path, rng: random.Random, cli: Any) -> None:
    key = key_of(KeyKind.LEGACY_USER, rng).key
    (tmp_path / "t.py").write_text(f"KEY = '{key}'  # keysentry:allow\n")
    result = cli("scan", str(tmp_path))
    assert result.code == 0
    assert "suppressed 1 by inline allow" in result.err
    assert cli("scan", "--no-inline-allow", str(tmp_path)).code == 1


def test_the_ignore_file_takes_fingerprints_and_paths(
    tmp_path: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.ADMIN, rng).key
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text(f"A = '{a}'\n")
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "b.py").write_text(f"B = '{b}'\n")
    monkeypatch.chdir(tmp_path)
    fingerprint_a = cli("scan", "--format", "json", "src").json()["findings"][0]["fingerprint"]
    Path(".keysentryignore").write_text(f"# known test keys\n{fingerprint_a}  # a\nfixtures/*\n")
    result = cli("scan", ".")
    assert result.code == 0
    assert "suppressed 2 by ignore file" in result.err


def test_a_baseline_reports_only_new_keys_and_never_churns(
    tmp_path: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    monkeypatch.chdir(tmp_path)
    Path("app.py").write_text(f"OLD = '{old}'\n")
    assert cli("scan", "--baseline", "base.json", "--update-baseline", "app.py").code == 0
    first = Path("base.json").read_text()
    assert old not in first
    # Moving the key to another line and file changes nothing in the baseline.
    Path("app.py").unlink()
    Path("moved.py").write_text(f"\n\n\n# moved\nOLD = '{old}'\n")
    assert cli("scan", "--baseline", "base.json", "moved.py").code == 0
    assert cli("scan", "--baseline", "base.json", "--update-baseline", "moved.py").code == 0
    assert Path("base.json").read_text() == first
    Path("new.py").write_text(f"NEW = '{new}'\n")
    result = cli("scan", "--baseline", "base.json", "--format", "json", ".")
    assert result.code == 1
    assert [f["redacted"] for f in result.json()["findings"]] == ["sk-proj-..." + new[-4:]]


def test_a_malformed_baseline_is_a_one_line_error(tmp_path: Path, cli: Any) -> None:
    (tmp_path / "base.json").write_text("{not json")
    result = cli("scan", "--baseline", str(tmp_path / "base.json"), str(tmp_path))
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "is not JSON" in result.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[scan\n", "invalid TOML"),
        ("[scan]\nmax_file_size = 'huge'\n", "[scan] max_file_size must be a size"),
        ("[scan]\nexclude = 'x'\n", "[scan] exclude must be a list"),
        ("[scan]\ncolour = true\n", "unknown key 'colour'"),
        ("scan = 3\n", "[scan] must be a table"),
    ],
)
def test_malformed_config_is_a_one_line_error_naming_file_and_key(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("keysentry.toml").write_text(content)
    result = cli("scan", ".")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("keysentry: error: ") and "keysentry.toml" in line and message in line


def test_config_in_pyproject_applies(
    tmp_path: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("pyproject.toml").write_text('[tool.keysentry.scan]\nexclude = ["vendor/*"]\n')
    Path("vendor").mkdir()
    Path("vendor/lib.py").write_text(f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n")
    assert cli("scan", ".").code == 0


def test_skips_and_unreadable_files_are_reported_and_counted(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "big.txt").write_text("x" * 5000 + key)
    (tmp_path / "ok.py").write_text(f"K = '{key}'\n")
    os.mkfifo(tmp_path / "fifo")
    args = ["scan", "--max-file-size", "4K", "--no-gitignore", str(tmp_path)]
    if os.path.exists("/proc/self/mem"):
        args.append("/proc/self/mem")
    result = cli(*args)
    # An unreadable file makes the scan incomplete: exit 2 even though a key was found.
    assert result.code == (2 if os.path.exists("/proc/self/mem") else 1)
    assert f"skipped {tmp_path / 'big.txt'}: larger than the size limit" in result.err
    assert f"skipped {tmp_path / 'fifo'}: not a regular file" in result.err
    if os.path.exists("/proc/self/mem"):
        assert "warning: /proc/self/mem: unreadable" in result.err
        assert "1 unreadable" in result.err


def test_output_goes_to_a_file_when_asked(tmp_path: Path, rng: random.Random, cli: Any) -> None:
    (tmp_path / "k.py").write_text(f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n")
    report = tmp_path / "out" / "report.sarif"
    report.parent.mkdir()
    result = cli("scan", "--format", "sarif", "--output", str(report), str(tmp_path / "k.py"))
    assert (result.code, result.out) == (1, "")
    assert json.loads(report.read_text())["version"] == "2.1.0"


def test_the_console_script_runs_and_reports_its_version() -> None:
    script = str(console_script())  # the one installed with this keysentry, not PATH's
    done = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("keysentry, version ")


def colour_run(path: Path, env: dict[str, str]) -> str:
    """Run a scan with stdout on a pseudo-terminal and return what it printed there."""
    import pty

    leader, follower = pty.openpty()
    subprocess.run(
        [str(console_script()), "scan", str(path)],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=env,
        check=False,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_tty_unless_no_color(tmp_path: Path, rng: random.Random) -> None:
    (tmp_path / "k.py").write_text(f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\033[31m" in colour_run(tmp_path, env)
    assert "\033[" not in colour_run(tmp_path, {**env, "NO_COLOR": "1"})
    piped = subprocess.run(
        [str(console_script()), "scan", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert "\033[" not in piped.stdout and "sk-proj-..." in piped.stdout


def test_a_scanned_directory_brings_its_own_config_and_ignore_file(
    tmp_path: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`keysentry scan proj` from elsewhere uses proj/keysentry.toml and proj/.keysentryignore
    (path patterns relative to proj), and --verbose says so."""
    keys = {
        name: key_of(KeyKind.PROJECT, rng).key for name in ("vendor", "fixtures", "known", "new")
    }
    project = tmp_path / "proj"
    for name, key in keys.items():
        (project / name).mkdir(parents=True)
        (project / name / "k.py").write_text(f"K = '{key}'\n")
    (project / "keysentry.toml").write_text('[scan]\nexclude = ["vendor/*"]\n')
    monkeypatch.chdir(tmp_path)
    known = cli("scan", "--format", "json", "proj/known").json()["findings"][0]["fingerprint"]
    (project / ".keysentryignore").write_text(f"fixtures/*\n{known}\n")
    result = cli("scan", "--format", "json", "-v", "proj")
    assert result.code == 1
    assert [f["path"] for f in result.json()["findings"]] == ["proj/new/k.py"]
    assert "keysentry: config: " + str(project / "keysentry.toml") in result.err
    assert "keysentry: ignore file: " + str(project / ".keysentryignore") in result.err
    assert "(1 fingerprints, 1 path patterns)" in result.err
    assert "keysentry: excluded proj/vendor/k.py" in result.err
    # A git scan looks from the repository's root, wherever it runs from.
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "add", "-A"], check=True)
    staged = cli("scan", "--staged", "--format", "json", "-v", "proj")
    assert [f["path"] for f in staged.json()["findings"]] == ["new/k.py", "vendor/k.py"]
    assert "keysentry: config: " + str(project / "keysentry.toml") in staged.err


def test_gitignored_files_that_hold_keys_are_counted_never_shown(
    repo: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (repo / ".gitignore").write_text(".env\nsecret.txt\ndebug.log\nnode_modules/\n")
    (repo / ".env").write_text(f"OPENAI_API_KEY={key}\n")
    (repo / "secret.txt").write_text(f"{key}\n")
    (repo / "debug.log").write_text("nothing here\n")
    (repo / "node_modules").mkdir()
    (repo / "node_modules" / "k.js").write_text(f"k = '{key}'\n")  # an ignored directory
    monkeypatch.chdir(repo)
    result = cli("scan", ".")
    assert result.code == 0
    assert "keysentry: note: 2 gitignored files hold keys: run with --no-gitignore to see them" in (
        result.err
    )
    excluded = cli("scan", "--exclude", "secret.txt", "-v", ".")
    assert "1 gitignored file holds a key: run with --no-gitignore" in excluded.err
    assert "keysentry: gitignored, holds a key: .env" in excluded.err
    assert "holds a key: secret.txt" not in excluded.err
    assert key not in result.out + result.err + excluded.out + excluded.err
    shown = cli("scan", "--no-gitignore", "--format", "json", ".")
    assert shown.code == 1
    assert "gitignored" not in shown.err


def test_the_nearest_ignore_file_applies_though_the_config_is_further_up(
    repo: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "keysentry.toml").write_text("[scan]\ninline_allow = true\n")
    (repo / "proj" / "fixtures").mkdir(parents=True)
    (repo / "proj" / "fixtures" / "k.py").write_text(f"K = '{key_of(KeyKind.ADMIN, rng).key}'\n")
    (repo / "proj" / ".keysentryignore").write_text("fixtures/*\n")
    monkeypatch.chdir(repo)
    result = cli("scan", "-v", "proj")
    assert result.code == 0, result.out
    assert "suppressed 1 by ignore file" in result.err
    assert f"keysentry: config: {repo / 'keysentry.toml'}" in result.err


def a_tree_with_an_unreadable_archive(tmp_path: Path, rng: random.Random) -> Path:
    import gzip

    key = key_of(KeyKind.PROJECT, rng).key
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.env").write_text(f"K={key}\n")
    (tree / "cut.gz").write_bytes(gzip.compress(f"K={key}\n".encode())[:30])  # truncated
    return tree


def test_updating_a_baseline_from_an_incomplete_scan_is_no_pass(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    tree = a_tree_with_an_unreadable_archive(tmp_path, rng)
    baseline = tmp_path / "baseline.json"
    result = cli("scan", "--baseline", str(baseline), "--update-baseline", str(tree))
    assert result.code == 2
    assert "cut.gz" in result.err and "incomplete scan" in result.err
    assert "wrote 1 fingerprints" in result.err  # what could be read is still recorded
    accepted = cli(
        "scan", "--baseline", str(baseline), "--update-baseline", "--allow-incomplete", str(tree)
    )
    assert accepted.code == 0 and "accepted (--allow-incomplete)" in accepted.err


def test_an_accepted_incomplete_scan_is_a_warning_not_an_error(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    tree = a_tree_with_an_unreadable_archive(tmp_path, rng)
    refused = cli("scan", "--exit-zero", str(tree))
    assert refused.code == 2  # --exit-zero never hides an incomplete scan
    assert "keysentry: error: incomplete scan" in refused.err
    accepted = cli("scan", "--exit-zero", "--allow-incomplete", str(tree))
    assert accepted.code == 0
    assert "keysentry: warning: incomplete scan" in accepted.err
    assert "error" not in accepted.err


def test_checking_gitignored_files_reads_no_more_than_its_budget(
    repo: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keysentry.scanner.sources import gitignored

    key = key_of(KeyKind.PROJECT, rng).key
    (repo / ".gitignore").write_text("*.log\n")
    for n in range(6):
        (repo / f"{n}.log").write_text(f"K={key}\n" + "x" * 1000)
    monkeypatch.setattr(gitignored, "MAX_TOTAL_CHECKED", 3000)  # room for two of the six
    monkeypatch.chdir(repo)
    result = cli("scan", "-v", ".")
    assert result.code == 0
    assert "2 gitignored files hold keys" in result.err
    assert "4 gitignored files were not checked for keys" in result.err
    assert key not in result.out + result.err
