"""A hostile repository runs nothing and hides nothing; a git that fails is never a pass.

The repository's own config names programs (`core.fsmonitor`, run by any command that looks
at the index), `git replace` and grafts show other objects in place of the commit that added
a key, a `git` that is killed or truncated mid-answer leaves blobs unread, and a low
open-file limit starves the readers. keysentry must run none of those programs, scan the real
objects, and end every scan that did not read everything with exit 2, never with a pass and
never with the unread blob recorded as clean.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from leaks import assert_nowhere

from conftest import GitRepo
from keygen import key_of
from keysentry.scanner.keys import KeyKind


def a_key(rng: random.Random) -> str:
    return key_of(KeyKind.PROJECT, rng).key


def cache_dir(gitrepo: GitRepo) -> Path:
    return gitrepo.path / ".git" / "keysentry"


def traps(gitrepo: GitRepo, tmp_path: Path) -> Path:
    """Set every config value that names a program git may run; return the marker file that
    any of them creates when run."""
    marker = tmp_path / "ran"
    script = tmp_path / "trap.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat >/dev/null\n')
    script.chmod(0o755)
    for name in (
        "core.fsmonitor",
        "core.pager",
        "diff.external",
        "gpg.program",
        "credential.helper",
        "core.sshCommand",
    ):
        gitrepo("config", name, str(script))
    gitrepo("config", "log.showSignature", "true")
    gitrepo("config", "core.hooksPath", str(tmp_path / "hooks"))
    return marker


def test_repository_config_runs_no_program_in_any_command(
    gitrepo: GitRepo, rng: random.Random, cli: Any, tmp_path: Path
) -> None:
    key = a_key(rng)
    base = gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={key}\n"})
    marker = traps(gitrepo, tmp_path)
    gitrepo.write("staged.env", f"OPENAI_API_KEY={key}\n")
    gitrepo("add", "staged.env")
    # The trap is real: plain git runs it.
    subprocess.run(["git", "-C", str(gitrepo.path), "ls-files"], capture_output=True, check=False)
    assert marker.exists()
    marker.unlink()
    path = str(gitrepo.path)
    outputs = []
    for args in (
        ("scan", "--staged", path),
        ("scan", path),
        ("scan", "--history", "--no-cache", path),
        ("scan", "--history", path),
        ("scan", "--range", f"{base}..HEAD", path),
        ("migrate", "plan", path),
    ):
        result = cli(*args)
        outputs += [result.out, result.err]
        assert not marker.exists(), f"keysentry {args[1]} ran a program the repository names"
        if args[0] == "scan":
            assert result.code == 1, args
    assert_nowhere(key, *outputs, under=[cache_dir(gitrepo)])


def test_a_replaced_commit_still_shows_its_key_and_the_replace_ref_is_noted(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = a_key(rng)
    base = gitrepo.commit("init", **{"a.txt": "a\n"})
    leak = gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={key}\n"})
    gitrepo("checkout", "-q", "-b", "decoy", base)
    decoy = gitrepo.commit("harmless", **{"b.txt": "b\n"})
    gitrepo("checkout", "-q", "main")
    gitrepo("branch", "-q", "-D", "decoy")
    gitrepo("replace", leak, decoy)  # git log now shows `decoy` where `leak` is
    history = cli("scan", "--history", "--no-cache", "--format", "json", str(gitrepo.path))
    assert history.code == 1
    [finding] = history.json()["findings"]
    assert finding["git"]["introduced"]["commit"] == leak
    assert f"replace ref (git replace) substitute other objects for {leak}" in history.err
    ranged = cli("scan", "--range", f"{base}..main", "--format", "json", str(gitrepo.path))
    assert ranged.code == 1
    assert [f["git"]["introduced"]["commit"] for f in ranged.json()["findings"]] == [leak]
    assert "replace ref" in ranged.err
    assert_nowhere(
        key, history.out, history.err, ranged.out, ranged.err, under=[cache_dir(gitrepo)]
    )


def test_grafts_do_not_cut_the_commit_that_added_a_key_out_of_history(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = a_key(rng)
    base = gitrepo.commit("init", **{"a.txt": "a\n"})
    leak = gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={key}\n"})
    tip = gitrepo.commit("remove", **{"k.env": None})
    (gitrepo.path / ".git" / "info").mkdir(exist_ok=True)
    (gitrepo.path / ".git" / "info" / "grafts").write_text(f"{tip} {base}\n")
    history = cli("scan", "--history", "--no-cache", "--format", "json", str(gitrepo.path))
    assert history.code == 1
    [finding] = history.json()["findings"]
    assert finding["git"]["introduced"]["commit"] == leak
    assert "info/grafts rewrites commit parents: ignored" in history.err
    ranged = cli("scan", "--range", f"{base}..{tip}", "--format", "json", str(gitrepo.path))
    assert ranged.code == 1 and len(ranged.json()["findings"]) == 1
    assert_nowhere(
        key, history.out, history.err, ranged.out, ranged.err, under=[cache_dir(gitrepo)]
    )


class BrokenGit:
    """A `git` first on PATH whose `cat-file --batch` answers stop after `limit` bytes, then
    exit 0 as if all were well, or are killed (SIGKILL)."""

    def __init__(self, bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        real = shutil.which("git")
        assert real is not None
        self._real, self._wrapper = real, bindir / "git"
        bindir.mkdir()
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def install(self, limit: int | None, ending: str) -> None:
        """`limit` None: every answer whole, then `ending` (e.g. "exit 3")."""
        end = {"killed": "kill -9 $$"}.get(ending, ending)
        cut = "" if limit is None else f" | head -c {limit}"
        self._wrapper.write_text(
            "#!/bin/sh\n"
            'for arg in "$@"; do\n'
            '  if [ "$arg" = "--batch" ]; then\n'
            f'    "{self._real}" "$@"{cut}\n'
            f"    {end}\n"
            "  fi\n"
            "done\n"
            f'exec "{self._real}" "$@"\n'
        )
        self._wrapper.chmod(self._wrapper.stat().st_mode | stat.S_IXUSR)

    def remove(self) -> None:
        self._wrapper.unlink()


@pytest.fixture
def broken_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BrokenGit:
    return BrokenGit(tmp_path / "broken-bin", monkeypatch)


def big_file_with(key: str, rng: random.Random) -> str:
    """A file whose key sits past the first 8 KB: a reader cut at 4 KB never gets to it."""
    filler = "".join(rng.choice("abcdef0123456789") for _ in range(12_000))
    return f"# {filler}\nOPENAI_API_KEY={key}\n"


@pytest.mark.parametrize("ending", ["exit 0", "killed"])
def test_a_truncated_history_read_is_incomplete_and_never_cached_clean(
    ending: str, gitrepo: GitRepo, rng: random.Random, cli: Any, broken_git: BrokenGit
) -> None:
    key = a_key(rng)
    gitrepo.commit("small", **{f"f{i}.txt": f"file {i}\n" for i in range(5)})
    gitrepo.commit("leak", **{"k.env": big_file_with(key, rng)})
    blob = gitrepo("rev-parse", "HEAD:k.env")
    broken_git.install(4096, ending)
    cut = cli("scan", "--history", str(gitrepo.path))
    assert cut.code == 2
    assert f"warning: blob {blob}: not read: git cat-file" in cut.err
    assert "incomplete scan" in cut.err
    assert "Traceback" not in cut.err
    clean = (cache_dir(gitrepo) / "clean-blobs").read_bytes()
    assert bytes.fromhex(blob) not in clean
    assert len(clean) > 40  # the small blobs, read in full, were recorded
    broken_git.remove()
    whole = cli("scan", "--history", str(gitrepo.path))
    assert whole.code == 1, "the cache hid the key that was never read"
    assert_nowhere(key, cut.out, cut.err, whole.out, whole.err, under=[cache_dir(gitrepo)])


@pytest.mark.parametrize("mode", ["--staged", "--range"])
def test_a_truncated_staged_or_range_read_is_incomplete(
    mode: str, gitrepo: GitRepo, rng: random.Random, cli: Any, broken_git: BrokenGit
) -> None:
    key = a_key(rng)
    base = gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo.write("k.env", big_file_with(key, rng))
    gitrepo("add", "k.env")
    if mode == "--range":
        gitrepo.commit("leak")
    args = ["--staged"] if mode == "--staged" else ["--range", f"{base}..HEAD"]
    broken_git.install(4096, "killed")
    cut = cli("scan", *args, str(gitrepo.path))
    assert cut.code == 2
    assert "warning: k.env " in cut.err and "not read: git cat-file" in cut.err
    broken_git.remove()
    whole = cli("scan", *args, str(gitrepo.path))
    assert whole.code == 1
    assert_nowhere(key, cut.out, cut.err, whole.out, whole.err, under=[cache_dir(gitrepo)])


def test_a_cat_file_that_fails_after_answering_everything_is_not_a_pass(
    gitrepo: GitRepo, rng: random.Random, cli: Any, broken_git: BrokenGit
) -> None:
    key = a_key(rng)
    gitrepo.write("k.env", f"OPENAI_API_KEY={key}\n")
    gitrepo("add", "k.env")
    broken_git.install(None, "exit 3")
    result = cli("scan", "--staged", str(gitrepo.path))
    assert result.code == 2  # the key was found, but a failing git is no complete scan
    assert "warning: git cat-file --batch: not read: git cat-file exited with status 3" in (
        result.err
    )
    assert_nowhere(key, result.out, result.err, under=[cache_dir(gitrepo)])


def run_with_file_limit(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    code = "import sys; from keysentry.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        preexec_fn=lower,
        check=False,
        timeout=120,
    )


def test_a_low_open_file_limit_is_an_error_or_a_complete_scan_never_a_pass(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    key = a_key(rng)
    # Over 8 MB to read: history then reads with two threads, whose failures must surface.
    gitrepo.commit("big", **{f"f{i}.txt": rng.randbytes(1 << 20).hex() for i in range(5)})
    gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={key}\n"})
    outputs = []
    codes = set()
    for limit in (8, 10, 12, 14, 16, 20, 24, 32):
        for mode in ("--history", "--staged"):
            if mode == "--staged":
                gitrepo.write("s.env", f"OPENAI_API_KEY={key}\n")
                gitrepo("add", "s.env")
            done = run_with_file_limit(limit, "scan", mode, str(gitrepo.path))
            outputs += [done.stdout, done.stderr]
            assert done.returncode in (1, 2), (limit, mode, done.stderr[-300:])
            assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr
            codes.add(done.returncode)
    assert codes == {1, 2}  # the limits span both: too low to start, and enough to finish
    whole = run_with_file_limit(1024, "scan", "--history", str(gitrepo.path))
    assert whole.returncode == 1, "a starved scan left the key's blob recorded as clean"
    assert_nowhere(key, *outputs, whole.stdout, whole.stderr, under=[cache_dir(gitrepo)])


def test_the_commit_hooks_shortcuts_run_no_program_the_repository_names(
    gitrepo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shortcuts of scanner/precheck.py start git themselves (without `subprocess`): with
    the same hardened command line, so a clean commit under a trapped config still runs
    nothing and passes."""
    gitrepo.commit("init", **{"a.txt": "a\n"})
    marker = traps(gitrepo, tmp_path)
    gitrepo.write("b.txt", "clean\n")
    gitrepo("add", "b.txt")
    assert marker.exists()  # the trap is real: plain `git add` ran it
    marker.unlink()
    monkeypatch.chdir(gitrepo.path)
    from keysentry import hook
    from keysentry.scanner import precheck

    assert precheck.clean_staged(".")  # the shortcut itself is what runs
    assert hook.main(["scan", "--staged", "--quiet"]) == 0
    assert hook.main(["scan", "--pre-commit", "--quiet", "b.txt"]) == 0
    assert not marker.exists()


@pytest.mark.parametrize(
    ("limit", "ending"), [(4096, "exit 0"), (4096, "killed"), (None, "exit 3")]
)
def test_a_cut_or_failing_git_under_the_staged_shortcut_is_never_a_pass(
    limit: int | None,
    ending: str,
    gitrepo: GitRepo,
    rng: random.Random,
    broken_git: BrokenGit,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A clean file whose answer git cuts short (or that git then fails on) must not pass as
    clean at a glance: the full scan runs, and says the scan is incomplete (exit 2)."""
    gitrepo.commit("init", **{"a.txt": "a\n"})
    filler = "".join(rng.choice("abcdef0123456789") for _ in range(12_000))
    gitrepo.write("big.txt", f"# {filler}\n")
    gitrepo("add", "big.txt")
    monkeypatch.chdir(gitrepo.path)
    from keysentry import hook

    broken_git.install(limit, ending)
    assert hook.main(["scan", "--staged", "--quiet"]) == 2
    assert "incomplete scan" in capsys.readouterr().err


def test_a_partial_clones_promisor_remote_is_never_run_to_fetch_a_missing_blob(
    gitrepo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository's own `protocol.ext.allow=always` beats `-c protocol.allow=never`: reading
    a staged blob missing from a partial clone would run its remote, an `ext::` command.
    GIT_ALLOW_PROTOCOL beats the repository's config: nothing is fetched, and the blob that
    could not be read makes the scan incomplete, never clean."""
    gitrepo.commit("init", **{"a.txt": "a\n"})
    marker = tmp_path / "fetched"
    for name, value in (
        ("core.repositoryformatversion", "1"),
        ("extensions.partialClone", "origin"),
        ("remote.origin.url", f"ext::sh -c touch% {marker}% >&2% ;false"),
        ("remote.origin.promisor", "true"),
        ("protocol.ext.allow", "always"),
    ):
        gitrepo("config", name, value)
    missing = "1234567890" * 4
    gitrepo("update-index", "--add", "--cacheinfo", f"100644,{missing},b.txt")
    subprocess.run(  # the trap is real: plain git runs the remote
        ["git", "-C", str(gitrepo.path), "cat-file", "-p", missing], capture_output=True
    )
    assert marker.exists()
    marker.unlink()
    monkeypatch.chdir(gitrepo.path)
    from keysentry import hook

    assert hook.main(["scan", "--staged", "--quiet"]) == 2
    assert not marker.exists()
