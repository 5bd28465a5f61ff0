"""The pre-commit hook's shortcut (scanner/precheck.py): a commit of clean files exits at once,
without the scan's set-up or the detector, and every file the full scan would read otherwise
or find a key in goes to the full scan."""

from __future__ import annotations

import base64
import bz2
import codecs
import gzip
import io
import json
import lzma
import os
import random
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import GitRepo
from keygen import key_of
from keysentry import hook
from keysentry.config import DEFAULT_MAX_FILE_SIZE
from keysentry.errors import ExitCode
from keysentry.scanner import precheck
from keysentry.scanner.findings import Blob, findings_in
from keysentry.scanner.git import spawn
from keysentry.scanner.keys import KeyKind
from keysentry.scanner.needles import MARKER, PATTERNS
from keysentry.scanner.sources.archives import kind_of
from test_detect_properties import documents, examples, keys
from test_hook import both, modules_of

CLEAN_TEXT = {"a.txt": "a plain line\n", "b.py": "print('task risk desk sk-')\n"}
# Everything the full scan's set-up and search would load.
THE_FULL_SCAN = {
    "keysentry.commands.scan",
    "keysentry.config",
    "keysentry.scanner.detect",
    "keysentry.scanner.pipeline",
    "typing",
    "enum",
}


@pytest.fixture
def in_the_repository(gitrepo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's repository as the working directory: where a scan looks for config last."""
    monkeypatch.chdir(gitrepo.path)


def a_key(rng: random.Random) -> str:
    return key_of(KeyKind.PROJECT, rng).key


@examples(ci=150)
@given(data=st.data())
def test_a_file_holding_a_key_in_any_claimed_encoding_is_never_seen_as_clean(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    key = data.draw(keys())
    name, doc = data.draw(documents(key))
    assert findings_in(Blob("f", doc.data)), name  # the full scan finds it...
    path = tmp_path_factory.mktemp("doc") / "f"
    path.write_bytes(doc.data)
    assert not precheck.clean_files([str(path)]), name  # ...so the shortcut must not pass it


def test_a_commit_of_clean_files_exits_zero_without_the_scans_set_up_or_detector(
    gitrepo: GitRepo,
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    code, modules = modules_of(gitrepo.path, "scan", "--pre-commit", "--quiet", *CLEAN_TEXT)
    assert code == 0
    assert "keysentry.scanner.precheck" in modules
    assert THE_FULL_SCAN.isdisjoint(modules), THE_FULL_SCAN & modules


def test_the_shortcut_is_taken_only_for_the_hooks_own_command_line(gitrepo: GitRepo) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    for extra in (["--exit-zero"], ["--format", "json"], ["--max-file-size", "1"], []):
        args = ["scan", "--pre-commit", *extra, *CLEAN_TEXT]
        if extra:
            args.insert(2, "--quiet")
        _, modules = modules_of(gitrepo.path, *args)
        assert "keysentry.commands.scan" in modules, extra


def test_the_shortcuts_exit_code_is_the_clean_one() -> None:
    assert hook._CLEAN == ExitCode.CLEAN


def test_the_largest_file_read_is_one_the_full_scan_reads_too() -> None:
    assert precheck.LARGEST <= DEFAULT_MAX_FILE_SIZE


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text * 20)
    return buffer.getvalue()


def base64_after_wide_text(text: str) -> bytes:
    """UTF-16 text with a BOM whose head holds no NUL (CJK), then the key in base64."""
    encoded = base64.b64encode(text.encode()).decode()
    return codecs.BOM_UTF16_BE + ("\u4e2d" * 5000 + encoded).encode("utf-16-be")


@pytest.mark.parametrize(
    "how",
    [
        "zip",
        "gzip",
        "utf-32 with a BOM",
        "utf-16 with a BOM, base64 after 10 KB of CJK",
        "utf-16 without a BOM",
    ],
)
@pytest.mark.usefixtures("in_the_repository")
def test_a_key_the_raw_bytes_do_not_show_goes_to_the_full_scan_and_is_found(
    how: str,
    gitrepo: GitRepo,
    rng: random.Random,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = a_key(rng)
    text = f"OPENAI_API_KEY={key}\n"
    content = {
        "zip": lambda: zipped("k.env", text),
        "gzip": lambda: gzip.compress(text.encode()),
        "utf-32 with a BOM": lambda: codecs.BOM_UTF32_LE + text.encode("utf-32-le"),
        "utf-16 with a BOM, base64 after 10 KB of CJK": lambda: base64_after_wide_text(text),
        "utf-16 without a BOM": lambda: ("x" * 40 + text).encode("utf-16-le"),
    }[how]()
    assert MARKER not in content  # what the raw bytes do not show
    gitrepo.commit("init", **CLEAN_TEXT)
    (gitrepo.path / "blob").write_bytes(content)
    assert not precheck.clean_files(["blob", *CLEAN_TEXT])
    assert hook.main(["scan", "--pre-commit", "--quiet", "blob", *CLEAN_TEXT]) == ExitCode.FINDINGS
    out, err = capsys.readouterr()
    assert key not in out + err


def test_every_archive_format_the_scan_opens_is_left_to_it_whatever_its_head_holds() -> None:
    text = b"OPENAI_API_KEY=placeholder\n"
    tarred = io.BytesIO()
    with tarfile.open(fileobj=tarred, mode="w") as archive:
        member = tarfile.TarInfo("k.env")
        member.size = len(text)
        archive.addfile(member, io.BytesIO(text))
    for data in (
        zipped("k.env", text.decode()),
        gzip.compress(text),
        bz2.compress(text),
        lzma.compress(text),
        tarred.getvalue(),
    ):
        assert kind_of(data) is not None
        # Not only because of a NUL: the first bytes alone send an archive to the full scan.
        assert not precheck.read_as_it_is(data.replace(b"\0", b"\1"))


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("keysentry.toml", "[scan\n", ExitCode.ERROR),  # broken: the hook must fail, not pass
        ("pyproject.toml", "[tool.keysentry.scan]\nunknown = 1\n", ExitCode.ERROR),
        (".keysentryignore", "not a fingerprint or a path pattern: [\n", None),
        ("keysentry.toml", "[scan]\nexclude = ['*.txt']\n", ExitCode.CLEAN),
    ],
)
def test_a_config_or_ignore_file_sends_the_hook_to_the_full_scan_which_reads_it(
    name: str,
    content: str,
    code: ExitCode | None,
    gitrepo: GitRepo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    (gitrepo.path / "sub").mkdir()
    (gitrepo.path / name).write_text(content)
    (gitrepo.path / "sub" / "c.txt").write_text("clean\n")
    monkeypatch.chdir(gitrepo.path / "sub")  # the config is a parent's: still found
    assert not precheck.clean_files(["c.txt"])
    if code is not None:
        assert hook.main(["scan", "--pre-commit", "--quiet", "c.txt"]) == code


@pytest.mark.usefixtures("in_the_repository")
def test_another_tools_pyproject_does_not_keep_the_hook_from_its_shortcut(gitrepo: GitRepo) -> None:
    gitrepo.commit("init", **CLEAN_TEXT, **{"pyproject.toml": "[tool.black]\n"})
    assert precheck.clean_files(list(CLEAN_TEXT))


@pytest.mark.usefixtures("in_the_repository")
def test_files_the_full_scan_reads_otherwise_or_not_at_all_go_to_it(gitrepo: GitRepo) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    os.symlink("a.txt", "link")
    os.mkfifo("fifo")
    Path("big").write_bytes(b"x" * (precheck.LARGEST + 1))
    Path("nul").write_bytes(b"text\0" * 20)
    for odd in ("link", "fifo", "big", "nul", "missing", "-", "."):
        assert not precheck.clean_files(["a.txt", odd]), odd
    assert not precheck.clean_files([])
    assert precheck.clean_files(["a.txt", "b.py"])


def test_every_needle_anywhere_in_a_file_sends_it_to_the_full_scan(tmp_path: Path) -> None:
    for index, pattern in enumerate(PATTERNS):
        path = tmp_path / f"n{index}"
        path.write_bytes(b"x" * 9000 + pattern + b"y")  # past the head that the NUL test reads
        assert not precheck.clean_files([str(path)]), pattern


@pytest.mark.usefixtures("in_the_repository")
def test_a_clean_commit_ends_the_same_through_the_shortcut_and_through_click(
    gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    fast, click = both(capsys, ["scan", "--pre-commit", "--quiet", *CLEAN_TEXT])
    assert fast == click == (0, "", "")


# --- the staged shortcut (`scan --staged --quiet`, what `install-hook` runs) ----------------


def staged_clean_files(gitrepo: GitRepo) -> None:
    gitrepo.commit("init", **{"old.txt": "old\n"})
    for name, text in CLEAN_TEXT.items():
        gitrepo.write(name, text)
    gitrepo("add", *CLEAN_TEXT)


def test_a_clean_staged_commit_exits_zero_without_subprocess_or_the_full_scan(
    gitrepo: GitRepo,
) -> None:
    staged_clean_files(gitrepo)
    code, modules = modules_of(gitrepo.path, "scan", "--staged", "--quiet")
    assert code == 0
    assert "keysentry.scanner.git.spawn" in modules
    assert {"subprocess", *THE_FULL_SCAN}.isdisjoint(modules), modules & THE_FULL_SCAN


@pytest.mark.usefixtures("in_the_repository")
def test_the_staged_shortcut_reads_the_index_not_the_work_tree(
    gitrepo: GitRepo,
    rng: random.Random,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = a_key(rng)
    staged_clean_files(gitrepo)
    gitrepo.write("a.txt", f"OPENAI_API_KEY={key}\n")  # on disk only: not in the commit
    path = str(gitrepo.path)
    assert precheck.clean_staged(path)
    assert hook.main(["scan", "--staged", "--quiet", path]) == ExitCode.CLEAN
    gitrepo("add", "a.txt")
    gitrepo.write("a.txt", "clean again on disk\n")  # staged with the key, clean on disk
    assert not precheck.clean_staged(path)
    assert hook.main(["scan", "--staged", "--quiet", path]) == ExitCode.FINDINGS
    out, err = capsys.readouterr()
    assert key not in out + err


@pytest.mark.usefixtures("in_the_repository")
def test_what_the_staged_shortcut_cannot_see_at_a_glance_goes_to_the_full_scan(
    gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(gitrepo.path)
    gitrepo.write("a.txt", "first\n")
    gitrepo("add", "a.txt")
    assert not precheck.clean_staged(path)  # no commit yet: no HEAD to compare with
    gitrepo.commit("init")
    gitrepo("rm", "-q", "a.txt")
    assert not precheck.clean_staged(path)  # a commit that adds nothing
    assert hook.main(["scan", "--staged", "--quiet", path]) == ExitCode.CLEAN
    assert "nothing was scanned" in capsys.readouterr().err
    gitrepo("reset", "-q", "HEAD", "a.txt")
    gitrepo.write("keysentry.toml", "[scan\n")  # a broken config must fail the hook
    gitrepo.write("b.txt", "clean\n")
    gitrepo("add", "b.txt")
    assert not precheck.clean_staged(path)
    assert hook.main(["scan", "--staged", "--quiet", path]) == ExitCode.ERROR
    assert not precheck.clean_staged(str(gitrepo.path / "missing"))


@pytest.mark.usefixtures("in_the_repository")
def test_a_staged_commit_larger_than_a_pipe_holds_is_scanned_in_full(
    gitrepo: GitRepo,
    rng: random.Random,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gitrepo.commit("init", **{"old.txt": "old\n"})
    for index in range(2000):  # 82 KB of blob ids: more than one write to a pipe takes
        gitrepo.write(f"f{index}.txt", f"file {index}\n")
    gitrepo("add", ".")
    path = str(gitrepo.path)
    assert not precheck.clean_staged(path)  # clean, but the shortcut cannot ask for it all
    assert hook.main(["scan", "--staged", "--quiet", path]) == ExitCode.CLEAN
    key = a_key(rng)
    gitrepo.write("f1999.txt", f"OPENAI_API_KEY={key}\n")
    gitrepo("add", ".")
    assert hook.main(["scan", "--staged", "--quiet", path]) == ExitCode.FINDINGS
    out, err = capsys.readouterr()
    assert key not in out + err


def test_spawned_git_answers_or_says_none_never_hangs(gitrepo: GitRepo) -> None:
    tip = gitrepo.commit("init", **CLEAN_TEXT)
    path = str(gitrepo.path)
    assert spawn.output(path, "rev-parse", "HEAD", most=100) == f"{tip}\n".encode()
    assert spawn.output(path, "rev-parse", "--verify", "nothing-here", most=100) is None
    assert spawn.output(path, "cat-file", "--batch", stdin=b"HEAD\n", most=10) is None
    flood = b"HEAD\n" * 200_000  # 1 MB: no pipe takes it at once
    assert spawn.output(path, "cat-file", "--batch-check", stdin=flood, most=1 << 30) is None


# --- the cached history shortcut (`scan --history --quiet`, nothing changed) ----------------


def test_a_clean_history_rescanned_unchanged_exits_zero_without_subprocess_or_the_full_scan(
    gitrepo: GitRepo,
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    assert modules_of(gitrepo.path, "scan", "--history", "--quiet")[0] == 0  # the last result
    code, modules = modules_of(gitrepo.path, "scan", "--history", "--quiet")
    assert code == 0
    assert "keysentry.scanner.git.cache" in modules
    heavy = {"subprocess", *THE_FULL_SCAN} - {"enum"}  # `json` reads the result: `re`, `enum`
    assert heavy.isdisjoint(modules), modules & heavy


@pytest.mark.usefixtures("in_the_repository")
def test_the_history_shortcut_takes_only_a_clean_last_result_of_these_very_refs(
    gitrepo: GitRepo,
    rng: random.Random,
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet_history = ["scan", "--history", "--quiet"]
    gitrepo.commit("init", **CLEAN_TEXT)
    assert not precheck.clean_history(".")  # no last result yet
    assert hook.main(quiet_history) == ExitCode.CLEAN
    assert precheck.clean_history(".")
    key = a_key(rng)
    gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={key}\n"})
    assert not precheck.clean_history(".")  # the refs moved
    assert hook.main(quiet_history) == ExitCode.FINDINGS
    assert not precheck.clean_history(".")  # a result with a key in it
    assert hook.main(quiet_history) == ExitCode.FINDINGS
    out, err = capsys.readouterr()
    assert key not in out + err


@pytest.mark.usefixtures("in_the_repository")
def test_a_clean_last_result_does_not_pass_a_history_that_became_shallow(
    gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    tip = gitrepo.commit("more", **{"c.txt": "c\n"})
    assert hook.main(["scan", "--history", "--quiet"]) == ExitCode.CLEAN
    (gitrepo.path / ".git" / "shallow").write_text(f"{tip}\n")  # same refs, now shallow
    assert not precheck.clean_history(".")
    assert hook.main(["scan", "--history", "--quiet"]) == ExitCode.ERROR
    assert "shallow clone" in capsys.readouterr().err


@pytest.mark.usefixtures("in_the_repository")
def test_a_config_keeps_the_history_shortcut_away(gitrepo: GitRepo) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    assert hook.main(["scan", "--history", "--quiet"]) == ExitCode.CLEAN
    gitrepo.write("keysentry.toml", "[scan]\nmax_file_size = '1 KiB'\n")  # another cache key
    assert not precheck.clean_history(".")
    assert hook.main(["scan", "--history", "--quiet"]) == ExitCode.CLEAN


# --- found in review: the shortcut and the full scan agree on odd set-ups -------------------


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink loop"])
@pytest.mark.usefixtures("in_the_repository")
def test_an_ignore_file_that_is_not_a_file_fails_the_scan_and_is_never_passed_at_a_glance(
    kind: str, gitrepo: GitRepo
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    odd = gitrepo.path / ".keysentryignore"
    if kind == "directory":
        odd.mkdir()
    elif kind == "fifo":
        os.mkfifo(odd)
    else:
        odd.symlink_to(odd)
    assert not precheck.clean_files(list(CLEAN_TEXT))
    assert not precheck.clean_staged(".")
    if kind != "fifo":  # git cannot commit a FIFO: only the user can put one there
        assert hook.main(["scan", "--pre-commit", "--quiet", *CLEAN_TEXT]) == ExitCode.ERROR


@pytest.mark.usefixtures("in_the_repository")
def test_a_last_history_result_missing_a_field_is_scanned_afresh_not_trusted(
    gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    assert hook.main(["scan", "--history", "--quiet"]) == ExitCode.CLEAN
    stored = gitrepo.path / ".git" / "keysentry" / "history-result.json"
    document = json.loads(stored.read_text())
    del document["result"]["too_big"]  # as another version might have written it
    stored.write_text(json.dumps(document))
    assert not precheck.clean_history(".")
    assert hook.main(["scan", "--history"]) == ExitCode.CLEAN
    err = capsys.readouterr().err
    assert "internal error" not in err and "history unchanged" not in err


def test_a_fifo_in_place_of_the_last_result_is_no_result_and_no_hang(gitrepo: GitRepo) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    (gitrepo.path / ".git" / "keysentry").mkdir()
    os.mkfifo(gitrepo.path / ".git" / "keysentry" / "history-result.json")
    done = subprocess.run(
        [sys.executable, "-m", "keysentry", "scan", "--history", "--quiet"],
        cwd=gitrepo.path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.usefixtures("in_the_repository")
def test_a_clean_result_made_with_deeper_archive_limits_does_not_pass_a_default_rescan(
    gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)
    deeper = ["scan", "--history", "--max-archive-depth", "20"]
    assert hook.main([*deeper, "--quiet"]) == ExitCode.CLEAN
    assert not precheck.clean_history(".")
    assert hook.main(deeper) == ExitCode.CLEAN
    assert "history unchanged" in capsys.readouterr().err  # its own limits: reused
    assert hook.main(["scan", "--history"]) == ExitCode.CLEAN
    assert "history unchanged" not in capsys.readouterr().err  # the defaults: scanned again


def test_with_its_output_closed_a_clean_scan_passes_and_a_finding_is_an_error(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    gitrepo.commit("init", **CLEAN_TEXT)

    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        code = "import sys; from keysentry.cli import main; sys.exit(main(sys.argv[1:]))"
        return subprocess.run(
            [sys.executable, "-c", code, "scan", *args],
            cwd=gitrepo.path,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.close(1),  # `keysentry … >&-`
            timeout=60,
            check=False,
        )

    assert scan("--pre-commit", "--quiet", *CLEAN_TEXT).returncode == ExitCode.CLEAN
    key = a_key(rng)
    gitrepo.write("k.env", f"OPENAI_API_KEY={key}\n")
    closed = scan("--pre-commit", "--quiet", "k.env")
    assert closed.returncode == ExitCode.ERROR
    assert "standard output is closed" in closed.stderr and key not in closed.stderr


def test_spawned_git_that_is_gone_before_reading_its_input_is_no_answer() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    assert not spawn._write_at_once(write_end, b"HEAD\n")  # EPIPE, not an exception
