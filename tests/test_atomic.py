"""keysentry.atomic: writes that are all or nothing, from any number of threads, durable once
they return, and through symlinks."""

from __future__ import annotations

import os
import random
import stat
import threading
from pathlib import Path

import pytest

from keygen import key_of
from keysentry.atomic import write_atomically
from keysentry.providers import dotenv
from keysentry.providers.base import parse_ref
from keysentry.scanner.keys import KeyKind


def test_threads_writing_the_same_file_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "journal.json"
    payloads = [bytes([65 + n]) * (4096 + n) for n in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(payloads))

    def writer(data: bytes) -> None:
        start.wait()
        try:
            for _ in range(40):
                write_atomically(target, data)
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in payloads  # one whole payload, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]  # no temp file left


def test_the_directory_is_fsynced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(handle: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(handle).st_mode) else "file")
        real_fsync(handle)

    def replace(source: str | Path, destination: str | Path) -> None:
        synced.append("rename")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomically(tmp_path / "f", b"data")
    assert synced == ["file", "rename", "dir"]


def test_a_symlinked_file_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    real = shared / "settings.txt"
    real.write_bytes(b"old\n")
    real.chmod(0o640)
    link = tmp_path / "settings.txt"
    link.symlink_to(Path("shared") / "settings.txt")
    write_atomically(link, b"new\n")
    assert link.is_symlink() and os.readlink(link) == str(Path("shared") / "settings.txt")
    assert real.read_bytes() == b"new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in shared.iterdir()) == ["settings.txt"]


def test_a_new_file_gets_the_umask_default_or_the_mode_asked_for(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomically(tmp_path / "plain", b"x")
        write_atomically(tmp_path / "private", b"x", new_file_mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600


def test_storing_into_a_symlinked_dotenv_updates_the_shared_file(
    tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    shared = tmp_path / "secrets"
    shared.mkdir()
    (shared / ".env").write_text("DEBUG=1\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").symlink_to(shared / ".env")
    ref = parse_ref(f"dotenv://{app / '.env'}#OPENAI_API_KEY")
    assert dotenv.put(ref, key, tags={}, overwrite=False).created
    assert (app / ".env").is_symlink()
    assert (shared / ".env").read_text() == f"DEBUG=1\nOPENAI_API_KEY={key}\n"
    assert dotenv.get(ref).secret.reveal() == key
