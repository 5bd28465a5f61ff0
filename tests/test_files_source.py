"""Files and directories: .gitignore, .git/, symlinks, special files, size limits."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import git
from keygen import key_of
from keysentry.errors import InputError
from keysentry.scanner.findings import Blob
from keysentry.scanner.keys import KeyKind
from keysentry.scanner.sources.files import FileEntry, FileSource, Skip


def listing(*paths: str, **options: object) -> tuple[list[str], dict[str, str]]:
    """What a scan of `paths` reads, and what it skips with which reason."""
    limit = int(options.pop("max_file_size", 1 << 20))  # type: ignore[call-overload]
    source = FileSource(list(paths), max_file_size=limit, **options)  # type: ignore[arg-type]
    files, skips = [], {}
    for entry in source.entries():
        item = entry if isinstance(entry, Skip) else source.read(entry)
        if isinstance(item, Blob):
            files.append(item.path)
        elif isinstance(item, Skip):
            skips[item.path] = item.reason
    return sorted(files), skips


def test_a_work_tree_is_listed_as_git_sees_it(repo: Path, rng: random.Random) -> None:
    (repo / ".gitignore").write_text("build/\n*.log\n")
    (repo / "app.py").write_text("x = 1\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.js").write_text("y\n")
    (repo / "debug.log").write_text("z\n")
    (repo / "tracked.log").write_text("t\n")
    git(repo, "add", "-f", "tracked.log")
    files, _ = listing(str(repo))
    assert files == sorted(str(repo / n) for n in (".gitignore", "app.py", "tracked.log"))
    files, _ = listing(str(repo), use_gitignore=False)
    assert str(repo / "build/out.js") in files and str(repo / "debug.log") in files
    assert not any("/.git/" in f for f in files)


def test_outside_git_a_directory_is_walked_without_dot_git(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.txt").write_text("b")
    files, _ = listing(str(tmp_path), use_gitignore=False)
    assert files == [str(tmp_path / "a" / "b.txt")]


def test_git_is_asked_wherever_it_could_find_a_work_tree_and_nowhere_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keysentry.scanner.sources.files import may_be_in_work_tree

    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR"):
        monkeypatch.delenv(name, raising=False)
    plain = tmp_path / "plain" / "deep"
    plain.mkdir(parents=True)
    assert not may_be_in_work_tree(str(plain))
    for marker, make in ((".git", Path.mkdir), (".git", Path.touch), ("HEAD", Path.touch)):
        top = tmp_path / f"with{marker}{make.__name__}"
        (top / "sub").mkdir(parents=True)
        make(top / marker)  # a repository, a worktree's link to one, maybe a bare repository
        assert may_be_in_work_tree(str(top / "sub"))
    (tmp_path / "plain" / "link").symlink_to(tmp_path / "with.gitmkdir" / "sub")
    assert may_be_in_work_tree(str(tmp_path / "plain" / "link"))  # git looks from the target
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    assert may_be_in_work_tree(str(plain))


def test_outside_any_work_tree_the_walk_reads_every_file_as_git_would_have_left_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".gitignore").write_text("*.log\n")  # no repository: it means nothing
    (tmp_path / "debug.log").write_text("z\n")
    monkeypatch.setattr("keysentry.scanner.git.run.run_git", None)  # git must not be asked
    files, _ = listing(str(tmp_path))
    assert files == sorted(str(tmp_path / n) for n in (".gitignore", "debug.log"))


def test_symlinks_never_lead_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.env").write_text("k\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "real.txt").write_text("r\n")
    (root / "escape.env").symlink_to(outside / "secret.env")
    (root / "escape-dir").symlink_to(outside)
    (root / "alias.txt").symlink_to(root / "real.txt")
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    files, skips = listing(str(root), use_gitignore=False)
    assert files == [str(root / "real.txt")]  # the alias is read under the file's own name
    assert skips == {
        str(root / "escape.env"): "symlink points outside the scanned directory",
        str(root / "escape-dir"): "symlink points outside the scanned directory",
        str(root / "loop-a"): "symlink loop",
        str(root / "loop-b"): "symlink loop",
    }


def test_fifos_and_devices_are_skipped_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    files, skips = listing(str(tmp_path), "/dev/null", use_gitignore=False)
    assert files == []
    assert skips == {
        str(tmp_path / "pipe"): "not a regular file (FIFO, socket or device)",
        "/dev/null": "not a regular file (FIFO, socket or device)",
    }


def test_files_over_the_size_limit_are_reported(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 2048)
    (tmp_path / "small.txt").write_bytes(b"x" * 10)
    files, skips = listing(str(tmp_path), use_gitignore=False, max_file_size=1024)
    assert files == [str(tmp_path / "small.txt")]
    assert "size limit" in skips[str(tmp_path / "big.bin")]


def test_exclude_patterns_from_config_apply_to_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "keys.txt").write_text("k")
    (tmp_path / "main.py").write_text("m")
    files, _ = listing(str(tmp_path), use_gitignore=False, exclude=["fixtures/*"])
    assert files == [str(tmp_path / "main.py")]


def test_a_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        FileSource([str(tmp_path / "nope")], max_file_size=1)


def test_a_symlink_loop_named_on_the_command_line_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InputError, match="symlink loop"):
        FileSource([str(tmp_path / "a")], max_file_size=1)


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
def test_an_unreadable_file_is_a_skip_marked_unreadable(rng: random.Random) -> None:
    # /proc/self/mem is a regular file that even root cannot read from offset 0 (EIO).
    source = FileSource(["/proc/self/mem"], max_file_size=1 << 20)
    (entry,) = list(source.entries())
    assert isinstance(entry, FileEntry)
    skip = source.read(entry)
    assert isinstance(skip, Skip) and skip.unreadable
    assert key_of(KeyKind.PROJECT, rng).key not in skip.reason


def deep_tree(root: Path, levels: int, name: str, content: bytes) -> str:
    """A chain of `levels` directories below `root`, made by descriptor (the whole path is too
    long for one system call), with file `name` at the bottom; returns that file's path."""
    fd = os.open(root, os.O_RDONLY)
    for _ in range(levels):
        os.mkdir("d" * 8, dir_fd=fd)
        inner = os.open("d" * 8, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    file = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(file, content)
    os.close(file)
    os.close(fd)
    return os.path.join(str(root), *["d" * 8] * levels, name)


def test_a_key_below_the_longest_path_the_system_opens_is_found(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    bottom = deep_tree(tmp_path, 600, "k.env", f"OPENAI_API_KEY={key}\n".encode())
    with pytest.raises(OSError, match="too long"):
        os.stat(bottom)  # 5,400 bytes of path: over PATH_MAX
    result = cli("scan", "--format", "json", str(tmp_path))
    assert result.code == 1
    [finding] = result.json()["findings"]
    assert finding["path"] == bottom
    assert key not in result.out + result.err


def test_an_unreadable_directory_makes_the_scan_incomplete(
    tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "open.txt").write_text("nothing here\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "k.env").write_text(f"OPENAI_API_KEY={key}\n")
    locked.chmod(0)
    command = [
        sys.executable,
        "-c",
        "import sys; from keysentry.cli import main; sys.exit(main(sys.argv[1:]))",
        "scan",
        str(tmp_path),
    ]
    if os.geteuid() == 0:  # root reads any directory: run without that capability
        if shutil.which("setpriv") is None:
            locked.chmod(0o755)
            pytest.skip("running as root, and no setpriv to drop the capability to read all")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        locked.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert f"warning: {locked}: unreadable directory: Permission denied" in done.stderr
    assert "incomplete scan" in done.stderr
    assert key not in done.stdout + done.stderr
