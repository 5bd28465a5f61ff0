"""The lean entry point (keysentry.hook): the command lines git hooks, pre-commit and CI run
reach their command without click, and mean exactly what they mean through the click CLI."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from conftest import GitRepo
from keygen import key_of
from keysentry import hook
from keysentry.cli import main as cli_main
from keysentry.scanner.keys import KeyKind


def a_key(rng: random.Random) -> str:
    return key_of(KeyKind.PROJECT, rng).key


def both(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(code, out, err) of `argv` through the fast path and through click, timings removed."""
    results = []
    for main in (hook.main, cli_main):
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        out = re.sub(r'"seconds": [0-9.e-]+', '"seconds": 0', out)
        results.append((code, out, re.sub(r"in \d+\.\d+s", "in Ts", err)))
    return results[0], results[1]


def staged_key(gitrepo: GitRepo, rng: random.Random) -> str:
    key = a_key(rng)
    gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo.write("k.env", f"OPENAI_API_KEY={key}\n")
    gitrepo.write("-q", f"OPENAI_API_KEY={key}\n")  # a file named like an option
    gitrepo("add", "k.env", "--", "-q")
    return key


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "--staged", "-q", "{repo}"],
        ["scan", "--staged", "--format", "json", "{repo}"],
        ["scan", "--staged", "--format=sarif", "--exit-zero", "{repo}"],
        ["scan", "--history", "--no-cache", "--format", "json", "{repo}"],
        ["scan", "--history", "{repo}"],
        ["scan", "--range", "HEAD~1..HEAD", "--format", "json", "{repo}"],
        ["scan", "--pre-commit", "--quiet", "{repo}/k.env", "{repo}/a.txt"],
        ["scan", "--pre-commit", "--quiet", "-q"],  # the file `-q`, not the option
        ["scan", "--exclude", "*.env", "--exclude", "x", "{repo}"],
        ["--debug", "scan", "--staged", "--verbose", "{repo}"],
        ["scan", "--staged", "--quiet", "--verbose", "{repo}"],  # a usage error, both ways
        ["scan", "--format", "nope", "{repo}"],  # click's error: not read by the fast path
        ["scan", "--bogus", "{repo}"],
        ["scan", "--staged", "--", "{repo}"],
        ["scan", "--help"],
        ["--version"],
    ],
)
def test_a_command_line_means_the_same_on_the_fast_path_and_through_click(
    argv: list[str],
    gitrepo: GitRepo,
    rng: random.Random,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = staged_key(gitrepo, rng)
    gitrepo.commit("leak")
    gitrepo.write("k2.env", f"OPENAI_API_KEY={key}x\n")
    gitrepo("add", "k2.env")
    monkeypatch.chdir(gitrepo.path)
    args = [a.replace("{repo}", str(gitrepo.path)) for a in argv]
    cli_main(args)  # once before: a history scan's cache is then warm for both
    fast, click = both(capsys, args)
    assert fast == click
    assert key not in "".join(map(str, fast))


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "--format", "json", "--format", "text", "."],  # repeated: click keeps the last
        ["scan", "--since"],  # no value
        ["scan", "--since", "--staged", "."],  # a value that looks like an option
        ["scan", "-qv", "."],
        ["scan", "--", "."],
        ["scan", "--verify", "."],
        ["scan", "--staged=yes", "."],
        ["pre-push", "a", "b"],
        ["verify"],
        [],
    ],
)
def test_anything_but_a_plain_machine_command_line_goes_to_click(argv: list[str]) -> None:
    assert hook._fast_command(argv) is None


def test_an_unreadable_path_goes_to_click_which_says_so(tmp_path: Path) -> None:
    secret = tmp_path / "locked"
    secret.write_text("x\n")
    secret.chmod(0)
    try:
        if os.access(secret, os.R_OK):
            pytest.skip("running as a user who reads every file")
        assert hook._fast_command(["scan", "--pre-commit", str(secret)]) is None
    finally:
        secret.chmod(0o600)


def run_lean(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`python -m keysentry ARGS` in a fresh interpreter, which then prints the modules it
    imported that a hook must not pay for."""
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['keysentry', *{list(args)!r}]\n"
        "try:\n"
        "    runpy.run_module('keysentry', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'tempfile', 'dataclasses', 'boto3', 'openai'))\n"
        "    print('HEAVY', heavy, file=sys.stderr)\n"
        "    raise\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def test_git_hooks_pre_commit_and_cached_rescans_never_import_click(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    key = staged_key(gitrepo, rng)
    base = gitrepo("rev-parse", "HEAD")
    for args in (
        ("scan", "--staged", "-q"),
        ("scan", "--pre-commit", "--quiet", "k.env", "a.txt", "-q"),
    ):
        code, out, err = run_lean(gitrepo.path, *args)
        assert code == 1, err
        assert "HEAVY []" in err
        assert key not in out + err
    tip = gitrepo.commit("leak")
    run_lean(gitrepo.path, "scan", "--history", "-q")  # fills the caches
    code, out, err = run_lean(gitrepo.path, "scan", "--history", "-q")
    assert code == 1 and "HEAVY []" in err, err
    push = {"PRE_COMMIT_FROM_REF": base, "PRE_COMMIT_TO_REF": tip}
    code, out, err = run_lean(gitrepo.path, "pre-push", env=push)
    assert code == 1 and "HEAVY [" in err and "'click" not in err, err  # its log: a temp file
    assert key not in out + err


def modules_of(cwd: Path, *args: str) -> tuple[int, set[str]]:
    """The exit code of `python -m keysentry ARGS` in a fresh interpreter, and every module it
    imported."""
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['keysentry', *{list(args)!r}]\n"
        "try:\n"
        "    runpy.run_module('keysentry', run_name='__main__')\n"
        "except SystemExit:\n"
        "    print('MODULES', *sorted(sys.modules), file=sys.stderr)\n"
        "    raise\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )
    [line] = [x for x in done.stderr.splitlines() if x.startswith("MODULES ")]
    return done.returncode, set(line.split()[1:])


def test_a_cached_rescan_of_a_clean_history_loads_neither_the_detector_nor_openssl(
    gitrepo: GitRepo,
) -> None:
    gitrepo.commit("init", **{"a.txt": "a\n", "b.py": "print('b')\n"})
    assert modules_of(gitrepo.path, "scan", "--history", "-q")[0] == 0  # fills the caches
    code, modules = modules_of(gitrepo.path, "scan", "--history", "-q")
    assert code == 0
    assert "keysentry.scanner.git.cache" in modules  # the cache was asked, and answered
    assert {"keysentry.scanner.detect", "ahocorasick_rs", "_hashlib"}.isdisjoint(modules)


def test_a_pre_commit_scan_of_named_files_starts_no_git(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    staged_key(gitrepo, rng)
    code, modules = modules_of(gitrepo.path, "scan", "--pre-commit", "--quiet", "k.env", "a.txt")
    assert code == 1
    assert "keysentry.scanner.detect" in modules
    assert {"subprocess", "keysentry.scanner.sources.gitignored"}.isdisjoint(modules)


def test_the_console_script_and_python_m_start_at_the_lean_entry_point() -> None:
    [script] = [e for e in metadata.entry_points(group="console_scripts") if e.name == "keysentry"]
    assert script.value == "keysentry.hook:main"
    main_module = Path(hook.__file__).with_name("__main__.py").read_text()
    assert "from keysentry.hook import main" in main_module


def test_an_internal_error_on_the_fast_path_is_one_scrubbed_line(
    rng: random.Random, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = a_key(rng)

    def broken(paths: list[str], options: object) -> int:
        raise RuntimeError(f"boom {key}")

    monkeypatch.setattr("keysentry.commands.scan.run", broken)
    assert hook.main(["scan", "--staged", "."]) == 2
    err = capsys.readouterr().err
    assert "keysentry: internal error: RuntimeError: boom" in err
    assert "--debug" in err and "Traceback" not in err
    assert key not in err
    assert hook.main(["scan", "--debug", "--staged", "."]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and key not in err


def test_another_tools_pyproject_is_not_parsed_on_a_hook_path(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    key = staged_key(gitrepo, rng)
    (gitrepo.path / "pyproject.toml").write_text("[tool.black\nline-length = 100\n")  # broken
    code, out, err = run_lean(gitrepo.path, "scan", "--staged", "-q")
    assert code == 1 and "HEAVY []" in err and "invalid TOML" not in err
    (gitrepo.path / "pyproject.toml").write_text("[tool.keysentry\n")  # ours, broken: said
    code, out, err = run_lean(gitrepo.path, "scan", "--staged", "-q")
    assert code == 2 and "invalid TOML" in err
    assert key not in out + err
