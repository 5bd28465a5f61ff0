"""Hostile archives: bombs, deep nesting, member names that climb out, links, encryption,
damage and names that try to forge output. Each stops at a named limit (exit 2, one clear line),
writes nothing, follows nothing, and leaks no key.
"""

from __future__ import annotations

import gzip
import io
import random
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from leaks import assert_nowhere

from keygen import key_of
from keysentry.scanner.keys import KeyKind


def zip_of(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def listing(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_a_zip_bomb_member_stops_at_the_ratio_limit_and_the_rest_is_still_scanned(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    bomb = zip_of({"zeros.bin": bytes(64 << 20), "app.env": f"K={key}\n".encode()})
    assert len(bomb) < 200_000
    (tmp_path / "bomb.zip").write_bytes(bomb)
    result = cli("scan", str(tmp_path / "bomb.zip"))
    assert result.code == 2
    assert (
        f"{tmp_path}/bomb.zip!zeros.bin: not scanned: compression ratio over 100:1, a zip "
        "bomb? (see --max-archive-ratio)" in result.err
    )
    assert f"{tmp_path}/bomb.zip!app.env:1:3: " in result.out
    assert_nowhere(key, result.out, result.err)


def test_a_gzip_bomb_stops_at_the_ratio_limit(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "logs.gz").write_bytes(gzip.compress(bytes(64 << 20)))
    result = cli("scan", str(tmp_path / "logs.gz"))
    assert result.code == 2
    assert "not fully scanned: compression ratio over 100:1" in result.err
    assert "incomplete scan" in result.err


def test_a_nested_bomb_stops_at_the_blob_ratio_before_it_multiplies(
    cli: Any, tmp_path: Path
) -> None:
    """42.zip's shape: each level holds 16 copies of the level below; the leaves are 4 MiB of
    zeros. Each stream alone looks modest; their sum against the file's size does not."""
    level = zip_of({"zeros.bin": bytes(4 << 20)})
    for depth in range(4):
        level = zip_of({f"{depth}-{i}.zip": level for i in range(16)})
    (tmp_path / "42.zip").write_bytes(level)
    result = cli("scan", str(tmp_path / "42.zip"))
    assert result.code == 2
    assert f"{tmp_path}/42.zip: not fully scanned: compression ratio over 100:1" in result.err
    assert "exit 2" in result.err


def test_a_quine_like_self_nesting_archive_stops_at_the_depth_limit(
    cli: Any, tmp_path: Path
) -> None:
    level = zip_of({"r.zip": b"PK\x05\x06" + bytes(18)}, zipfile.ZIP_STORED)
    for _ in range(30):
        level = zip_of({"r.zip": level}, zipfile.ZIP_STORED)
    (tmp_path / "r.zip").write_bytes(level)
    result = cli("scan", str(tmp_path / "r.zip"))
    assert result.code == 2
    assert "zip archive not opened: nested deeper than 8 (see --max-archive-depth)" in result.err


def test_the_member_and_byte_limits_stop_a_scan_with_exit_2(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "many.zip").write_bytes(zip_of({f"f{i}": b"" for i in range(300)}))
    many = cli("scan", str(tmp_path / "many.zip"), "--max-archive-members", "100")
    assert many.code == 2
    assert f"{tmp_path}/many.zip: not fully scanned: more than 100 archive members" in many.err
    (tmp_path / "big.gz").write_bytes(gzip.compress(random.Random(0).randbytes(2 << 20)))
    big = cli("scan", str(tmp_path / "big.gz"), "--max-archive-bytes", "1M")
    assert big.code == 2
    assert "more than 1,048,576 bytes decompressed (see --max-archive-bytes)" in big.err


def test_member_names_that_climb_out_or_are_links_are_only_names(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    (scanned / "evil.zip").write_bytes(
        zip_of({"../../evil.env": f"K={key}\n".encode(), "/etc/evil.env": b"x"})
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        archive.addfile(link)
        hard = tarfile.TarInfo("hard")
        hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
        archive.addfile(hard)
    (scanned / "links.tar").write_bytes(buffer.getvalue())
    before = listing(tmp_path)
    result = cli("scan", str(scanned))
    assert result.code == 1
    assert f"{scanned}/evil.zip!../../evil.env:1:3: " in result.out
    assert listing(tmp_path) == before, "nothing is extracted"
    assert "passwd" not in result.out + result.err
    assert_nowhere(key, result.out, result.err)


def _encrypted_zip(path: Path, member: Path) -> None:
    """An encrypted zip: by the `zip` tool when installed, else the flag bit set by hand."""
    if shutil.which("zip"):
        subprocess.run(["zip", "-q", "-j", "-P", "pass", str(path), str(member)], check=True)
        return
    data = bytearray(zip_of({member.name: member.read_bytes()}, zipfile.ZIP_STORED))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + offset] |= 1
    path.write_bytes(bytes(data))


def test_an_encrypted_member_is_reported_not_scanned(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    member = tmp_path / "secret.env"
    member.write_text(f"K={key}\n")
    _encrypted_zip(tmp_path / "locked.zip", member)
    member.unlink()
    result = cli("scan", str(tmp_path / "locked.zip"))
    assert result.code == 2
    assert f"{tmp_path}/locked.zip!secret.env: encrypted: not scanned" in result.err
    assert_nowhere(key, result.out, result.err)


def test_a_damaged_archive_is_incomplete_never_clean(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    whole = gzip.compress((f"K={key}\n" + "filler " * 50_000).encode())
    (tmp_path / "cut.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04" + bytes(100))
    result = cli("scan", str(tmp_path))
    assert result.code == 2
    assert f"{tmp_path}/cut.gz: corrupt gzip archive: truncated gzip stream" in result.err
    assert f"{tmp_path}/bad.zip: corrupt zip archive" in result.err
    assert_nowhere(key, result.out, result.err)


@pytest.mark.parametrize("name", ["a\nb.env:1:1: forged finding", "\x1b[2Jclear.env"])
def test_a_member_name_cannot_forge_a_line_or_reach_the_terminal(
    cli: Any, tmp_path: Path, rng: random.Random, name: str
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "n.zip").write_bytes(zip_of({name: f"K={key}\n".encode()}))
    result = cli("scan", str(tmp_path / "n.zip"))
    assert result.code == 1
    assert len(result.out.splitlines()) == 1
    assert "\x1b" not in result.out + result.err
    assert_nowhere(key, result.out, result.err)


def test_history_of_a_committed_bomb_is_incomplete_and_never_cached_clean(
    cli: Any, gitrepo: Any, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    bomb = zip_of({"zeros.bin": bytes(64 << 20), "app.env": f"K={key}\n".encode()})
    (gitrepo.path / "bomb.zip").write_bytes(bomb)
    gitrepo("add", "bomb.zip")
    gitrepo.commit("bomb")
    for _ in range(2):  # the second run must not trust a cache
        result = cli("scan", "--history", str(gitrepo.path))
        assert result.code == 2
        blob = gitrepo("rev-parse", "HEAD:bomb.zip")
        assert f"blob {blob}!zeros.bin: not scanned: compression ratio over 100:1" in result.err
        assert "bomb.zip!app.env:1:3: " in result.out
    assert_nowhere(key, result.out, result.err, under=[gitrepo.path / ".git" / "keysentry"])


def test_an_image_manifest_cannot_name_a_file_outside_its_layout(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    """A layout directory whose manifest names `../outside.env` as its config and a layer:
    only the files the layout holds are ever opened."""
    import json

    key = key_of(KeyKind.PROJECT, rng).key
    config = {"history": [{"created_by": f"RUN K={key} make"}]}
    (tmp_path / "outside.json").write_text(json.dumps(config))
    layout = tmp_path / "layout"
    layout.mkdir()
    manifest = [{"Config": "../outside.json", "Layers": ["/etc/passwd"]}]
    (layout / "manifest.json").write_text(json.dumps(manifest))
    result = cli("scan", "--image", str(layout))
    assert result.code == 2
    assert "image manifest not understood: ../outside.json is missing" in result.err
    assert result.out == "", "nothing outside the layout was read"
    assert_nowhere(key, result.out, result.err)
