"""Keys inside archives: every format, told by content, nested, in files, stdin and git.

Every archive is built here (zipfile, tarfile, gzip/bz2/lzma, zstandard) and a wheel by the real
build backend (setuptools through `pip wheel`), then scanned through the command line; a
finding's path names the chain down to the member, with line and column inside it.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, GitRepo
from keygen import key_of
from keysentry.scanner.findings import Blob, fingerprint
from keysentry.scanner.keys import KeyKind
from keysentry.scanner.sources.archives import Limits, chain_path, members

TEXT = "# settings\nOPENAI_API_KEY = '{key}'\n"  # the key at line 2, column 19


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_of(files: dict[str, bytes], compression: str = "") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return compress(raw.getvalue(), compression)


def compress(data: bytes, how: str) -> bytes:
    if how == "gz":
        return gzip.compress(data)
    if how == "bz2":
        return bz2.compress(data)
    if how == "xz":
        return lzma.compress(data)
    if how == "zst":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


def findings(result: CliResult) -> list[dict[str, Any]]:
    assert result.code in (0, 1), result.err
    return list(result.json()["findings"])


def where(result: CliResult) -> set[tuple[str, int, int]]:
    return {(f["path"], f["line"], f["column"]) for f in findings(result)}


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("app.zip", lambda t: zip_of({"conf/settings.py": t})),
        ("app.whl", lambda t: zip_of({"conf/settings.py": t})),
        ("app.jar", lambda t: zip_of({"conf/settings.py": t})),
        ("report.docx", lambda t: zip_of({"conf/settings.py": t})),
        ("app.tar", lambda t: tar_of({"conf/settings.py": t})),
        ("app.tar.gz", lambda t: tar_of({"conf/settings.py": t}, "gz")),
        ("app.tar.bz2", lambda t: tar_of({"conf/settings.py": t}, "bz2")),
        ("app.tar.xz", lambda t: tar_of({"conf/settings.py": t}, "xz")),
        ("app.tar.zst", lambda t: tar_of({"conf/settings.py": t}, "zst")),
    ],
)
def test_a_key_in_each_archive_format_is_found_with_its_chain_line_and_column(
    cli: Any, tmp_path: Path, rng: random.Random, name: str, build: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / name).write_bytes(build(TEXT.format(key=key).encode()))
    result = cli("scan", str(tmp_path / name), "--format", "json")
    assert where(result) == {(f"{tmp_path / name}!conf/settings.py", 2, 19)}
    assert findings(result)[0]["archive"] == {"members": ["conf/settings.py"]}


@pytest.mark.parametrize("suffix", ["gz", "bz2", "xz", "zst"])
def test_a_plain_compressed_file_is_one_member_named_without_its_suffix(
    cli: Any, tmp_path: Path, rng: random.Random, suffix: str
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    path = tmp_path / f"settings.py.{suffix}"
    path.write_bytes(compress(TEXT.format(key=key).encode(), suffix))
    assert where(cli("scan", str(path), "--format", "json")) == {(f"{path}!settings.py", 2, 19)}


def test_archives_are_told_by_content_not_by_name(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "notes.txt").write_bytes(zip_of({"a.env": f"K={key}\n".encode()}))
    (tmp_path / "data").write_bytes(gzip.compress(f"K={key}\n".encode()))
    got = where(cli("scan", str(tmp_path), "--format", "json"))
    assert got == {
        (f"{tmp_path}/notes.txt!a.env", 1, 3),
        (f"{tmp_path}/data!<gzip content>", 1, 3),
    }


def test_nested_archives_are_opened_down_to_the_depth_limit(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    inner = zip_of({"app/settings.py": TEXT.format(key=key).encode()})
    middle = tar_of({"dist/app-1.0.whl": inner}, "gz")
    outer = zip_of({"release.tar.gz": middle})
    (tmp_path / "bundle.zip").write_bytes(outer)
    path = f"{tmp_path}/bundle.zip!release.tar.gz!dist/app-1.0.whl!app/settings.py"
    assert where(cli("scan", str(tmp_path), "--format", "json")) == {(path, 2, 19)}
    shallow = cli("scan", str(tmp_path), "--max-archive-depth", "2")
    assert shallow.code == 2
    assert (
        f"{tmp_path}/bundle.zip!release.tar.gz!dist/app-1.0.whl: zip archive not opened: nested "
        "deeper than 2 (see --max-archive-depth)" in shallow.err
    )
    assert "incomplete scan" in shallow.err
    assert cli("scan", str(tmp_path), "--max-archive-depth", "2", "--allow-incomplete").code == 0


def test_a_bang_or_backslash_in_a_name_is_escaped_so_the_chain_splits_one_way(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "a!b.zip").write_bytes(zip_of({"x!y\\z.env": f"K={key}\n".encode()}))
    [found] = findings(cli("scan", str(tmp_path / "a!b.zip"), "--format", "json"))
    assert found["path"] == f"{tmp_path}/a\\!b.zip!x\\!y\\\\z.env"
    assert found["archive"]["members"] == ["x!y\\z.env"]
    assert chain_path([f"{tmp_path}/a!b.zip", "x!y\\z.env"]) == found["path"]


def test_an_archive_on_standard_input_is_opened(tmp_path: Path, rng: random.Random) -> None:
    from conftest import console_script

    key = key_of(KeyKind.PROJECT, rng).key
    done = subprocess.run(
        [str(console_script()), "scan", "-"],
        input=tar_of({"x.env": f"K={key}\n".encode()}, "gz"),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.decode().startswith("<stdin>!x.env:1:3: ")


def test_a_member_over_the_size_limit_is_named_and_skipped(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    data = zip_of({"big.bin": b"x" * 5000, "small.env": f"K={key}\n".encode()})
    (tmp_path / "a.zip").write_bytes(data)
    result = cli("scan", str(tmp_path / "a.zip"), "--max-file-size", "4K")
    assert result.code == 1
    assert (
        f"skipped {tmp_path}/a.zip!big.bin: 5,000 bytes, larger than the size limit" in result.err
    )


def test_a_member_that_is_a_link_or_device_is_a_name_only(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        link = tarfile.TarInfo("etc/shadow-link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        archive.addfile(link)
    items = list(members(Blob("x.tar", buffer.getvalue())))
    assert items == []


def test_archive_limits_come_from_the_config(cli: Any, tmp_path: Path, rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "a.zip").write_bytes(zip_of({"b.zip": zip_of({"c.env": f"K={key}\n".encode()})}))
    (tmp_path / "keysentry.toml").write_text("[scan]\nmax_archive_depth = 1\n")
    result = cli("scan", str(tmp_path))
    assert result.code == 2 and "nested deeper than 1" in result.err
    (tmp_path / "keysentry.toml").write_text("[scan]\nmax_archive_depth = -1\n")
    bad = cli("scan", str(tmp_path))
    assert bad.code == 2 and "max_archive_depth must be a whole number" in bad.err


def test_the_member_limit_counts_every_level(tmp_path: Path) -> None:
    data = zip_of({f"f{i}.txt": b"x" for i in range(20)})
    items = list(members(Blob("a.zip", data), Limits(max_members=10)))
    assert items[-1].path == "a.zip"
    assert "more than 10 archive members" in items[-1].reason  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A wheel the real build backend (setuptools, through `pip wheel`) made of a project
    whose package holds a key; the key is built at run time."""
    root = tmp_path_factory.mktemp("wheelproject")
    key = key_of(KeyKind.PROJECT, random.Random("wheel")).key
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "app"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["app"]\n'
    )
    (root / "app").mkdir()
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "settings.py").write_text(TEXT.format(key=key))
    out = root / "dist"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--no-index",
            "-w",
            str(out),
            str(root),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [built] = out.glob("app-1.0-*.whl")
    return built, key


def test_a_key_in_a_wheel_inside_a_tarball_inside_a_commit_names_its_chain_and_commit(
    cli: Any, gitrepo: GitRepo, wheel: tuple[Path, str]
) -> None:
    built, key = wheel
    gitrepo.commit("readme", README="hello\n")
    release = tar_of({f"dist/{built.name}": built.read_bytes()}, "gz")
    (gitrepo.path / "release.tar.gz").write_bytes(release)
    gitrepo("add", "release.tar.gz")
    introduced = gitrepo.commit("release")
    gitrepo("rm", "-q", "release.tar.gz")
    removed = gitrepo.commit("remove the release")
    chain = f"release.tar.gz!dist/{built.name}!app/settings.py"
    history = cli("scan", "--history", str(gitrepo.path), "--format", "json")
    [found] = findings(history)
    assert (found["path"], found["line"], found["column"]) == (chain, 2, 19)
    assert found["fingerprint"] == fingerprint(key)
    assert found["git"]["introduced"]["commit"] == introduced
    assert found["git"]["removed"]["commit"] == removed
    # Rerun: the result cache rebuilds the same finding, chain and all.
    again = cli("scan", "--history", str(gitrepo.path), "--format", "json")
    assert [f["path"] for f in findings(again)] == [chain]
    ranged = cli(
        "scan", "--range", f"{introduced}~1..{removed}", str(gitrepo.path), "--format", "json"
    )
    [in_range] = findings(ranged)
    assert in_range["path"] == chain
    assert in_range["git"]["introduced"]["commit"] == introduced


def test_a_staged_archive_is_scanned_and_a_key_already_in_head_is_not_new(
    cli: Any, gitrepo: GitRepo, rng: random.Random
) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    archive = gitrepo.path / "conf.zip"
    archive.write_bytes(zip_of({"a.env": f"K={old}\n".encode()}))
    gitrepo("add", "conf.zip")
    staged = cli("scan", "--staged", str(gitrepo.path), "--format", "json")
    assert where(staged) == {("conf.zip!a.env", 1, 3)}
    gitrepo.commit("conf")
    archive.write_bytes(zip_of({"a.env": f"K={old}\n".encode(), "b.env": f"K={new}\n".encode()}))
    gitrepo("add", "conf.zip")
    [found] = findings(cli("scan", "--staged", str(gitrepo.path), "--format", "json"))
    assert found["path"] == "conf.zip!b.env"
    assert found["fingerprint"] == fingerprint(new)


def test_an_archive_blob_whose_member_was_passed_over_is_never_cached_clean(
    cli: Any, gitrepo: GitRepo
) -> None:
    (gitrepo.path / "a.zip").write_bytes(zip_of({"big.bin": b"x" * 5000}))
    gitrepo("add", "a.zip")
    gitrepo.commit("a")
    first = cli("scan", "--history", str(gitrepo.path), "--max-file-size", "4K")
    assert "big.bin: 5,000 bytes, larger than the size limit" in first.err
    cache = gitrepo.path / ".git" / "keysentry" / "clean-blobs"
    blob = bytes.fromhex(gitrepo("rev-parse", "HEAD:a.zip"))
    assert not cache.exists() or blob not in cache.read_bytes()


def test_a_7z_archive_is_opened_in_memory_and_an_encrypted_one_is_not_scanned(
    cli: Any, tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    py7zr = pytest.importorskip("py7zr")  # keysentry[archives], in the test extra
    key = key_of(KeyKind.PROJECT, rng).key
    with py7zr.SevenZipFile(tmp_path / "a.7z", "w") as archive:
        archive.writestr(TEXT.format(key=key), "conf/settings.py")
    with py7zr.SevenZipFile(tmp_path / "locked.7z", "w", password="pw") as archive:
        archive.writestr(TEXT.format(key=key), "conf/settings.py")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    result = cli("scan", str(tmp_path / "a.7z"), str(tmp_path / "locked.7z"), "--format", "json")
    assert result.code == 2
    assert {(f["path"], f["line"]) for f in result.json()["findings"]} == {
        (f"{tmp_path}/a.7z!conf/settings.py", 2)
    }
    assert f"{tmp_path}/locked.7z: encrypted 7z archive: not scanned" in result.err
    assert list(work.iterdir()) == [], "nothing is extracted"


def test_migrate_plans_a_key_inside_an_archive_for_a_manual_move(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "app.whl").write_bytes(zip_of({"app/settings.py": TEXT.format(key=key).encode()}))
    (tmp_path / "keysentry.toml").write_text(
        '[migrate]\ndestination = "dotenv://.env.prod#{name}"\n'
    )
    result = cli("migrate", "plan", str(tmp_path), "--env", "prod")
    assert result.code == 0, result.err
    assert "manual: inside an archive: rebuild the archive without it" in result.out


def test_an_archive_left_unopened_is_still_searched_as_bytes_under_its_own_path(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.env", f"K={key}\n")
    (tmp_path / "x!y.zip").write_bytes(buffer.getvalue())
    result = cli("scan", str(tmp_path / "x!y.zip"), "--max-archive-depth", "0", "--format", "json")
    assert result.code == 2
    [found] = result.json()["findings"]
    assert found["path"] == f"{tmp_path}/x!y.zip" and "archive" not in found
    assert "zip archive not opened: nested deeper than 0" in result.err
