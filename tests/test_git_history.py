"""`scan --history`: each unique blob once, one finding per key and path, exact timelines."""

from __future__ import annotations

import base64
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import GitRepo, git
from keygen import key_of
from keysentry.scanner.keys import KeyKind


def history(cli: Any, path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = cli("scan", "--history", "--format", "json", *args, str(path))
    findings = result.json()["findings"] if result.out else []
    return result.code, findings, result.err


def by_path(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in findings}


def who(gitrepo: GitRepo, commit: str) -> dict[str, str]:
    return {
        "commit": commit,
        "author": "Ada Lovelace",
        "email": "ada@example.com",
        "date": gitrepo.date(commit),
    }


def test_a_key_added_then_deleted_has_its_whole_timeline(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("init", **{"app.py": "x = 1\n"})
    added = gitrepo.commit("oops", **{"app.py": f"x = 1\nKEY = '{key}'\n"})
    gitrepo.commit("more", **{"other.txt": "o\n"})
    removed = gitrepo.commit("fix", **{"app.py": "x = 1\n"})
    code, findings, _ = history(cli, gitrepo.path)
    assert code == 1
    (finding,) = findings
    assert (finding["path"], finding["line"], finding["column"]) == ("app.py", 2, 8)
    blob = gitrepo("rev-parse", f"{added}:app.py")
    assert finding["git"] == {
        "blob": blob,
        "introduced": {**who(gitrepo, added), "path": "app.py", "line": 2},
        "removed": who(gitrepo, removed),
        "at_head": False,
        "in_working_tree": False,
        "refs": ["HEAD", "refs/heads/main"],
        "commits": 2,
        "paths": ["app.py"],
        "reachable": True,
    }


def test_keys_only_on_a_side_branch_or_a_tag_are_found_with_their_refs(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    side_key, tag_key = key_of(KeyKind.ADMIN, rng).key, key_of(KeyKind.LEGACY_USER, rng).key
    gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo("checkout", "-q", "-b", "side")
    side = gitrepo.commit("side", **{"side.env": f"ADMIN={side_key}\n"})
    gitrepo("checkout", "-q", "main")
    tagged = gitrepo.commit("tagged", **{"t.yaml": f"k: {tag_key}\n"})
    gitrepo("tag", "-a", "-m", "release", "v1")
    gitrepo.commit("untag", **{"t.yaml": None})
    code, findings, _ = history(cli, gitrepo.path)
    assert code == 1
    found = by_path(findings)
    assert found["side.env"]["git"]["introduced"]["commit"] == side
    assert found["side.env"]["git"]["refs"] == ["refs/heads/side"]
    assert found["side.env"]["git"]["at_head"] is False
    assert found["side.env"]["git"]["removed"] is None
    assert found["t.yaml"]["git"]["introduced"]["commit"] == tagged
    assert found["t.yaml"]["git"]["refs"] == ["HEAD", "refs/heads/main", "refs/tags/v1"]


def test_a_key_brought_by_a_merge_is_introduced_by_its_commit_and_reaches_main(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo("checkout", "-q", "-b", "feature")
    introduced = gitrepo.commit("feature", **{"svc.json": f'{{"key": "{key}"}}\n'})
    gitrepo("checkout", "-q", "main")
    gitrepo.commit("main", **{"a.txt": "b\n"})
    gitrepo("merge", "-q", "--no-ff", "-m", "merge", "feature")
    code, findings, _ = history(cli, gitrepo.path)
    assert code == 1
    (finding,) = findings
    git_info = finding["git"]
    assert git_info["introduced"]["commit"] == introduced
    assert git_info["at_head"] is True and git_info["in_working_tree"] is True
    assert git_info["refs"] == ["HEAD", "refs/heads/feature", "refs/heads/main"]
    assert git_info["commits"] == 2  # the feature commit and the merge; not the main-only one


def test_a_renamed_file_is_one_key_on_two_paths(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    first = gitrepo.commit("add", **{"old.py": f"K = '{key}'\n"})
    gitrepo("mv", "old.py", "new.py")
    moved = gitrepo.commit("rename")
    code, findings, _ = history(cli, gitrepo.path)
    assert code == 1
    found = by_path(findings)
    assert sorted(found) == ["new.py", "old.py"]
    assert found["old.py"]["git"]["introduced"]["commit"] == first
    assert found["old.py"]["git"]["removed"]["commit"] == moved
    assert found["new.py"]["git"]["introduced"]["commit"] == moved
    assert found["new.py"]["git"]["paths"] == ["new.py", "old.py"]
    assert found["old.py"]["fingerprint"] == found["new.py"]["fingerprint"]


def test_the_same_blob_in_many_commits_is_read_once(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("add", **{"k.py": f"K = '{key}'\n"})
    for i in range(5):
        gitrepo.commit(f"c{i}", **{"n.txt": f"{i}\n"})
    code, findings, err = history(cli, gitrepo.path, "--no-cache")
    assert code == 1
    (finding,) = findings
    assert finding["git"]["commits"] == 6
    assert "1 finding; 6 blobs" in err  # k.py once, and five versions of n.txt


def test_a_base64_key_in_history_is_found(gitrepo: GitRepo, rng: random.Random, cli: Any) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    encoded = base64.b64encode(key.encode()).decode()
    gitrepo.commit("secret", **{"k8s__secret.yaml": f"data:\n  OPENAI_API_KEY: {encoded}\n"})
    code, findings, _ = history(cli, gitrepo.path)
    assert code == 1
    assert [(f["path"], f["encoding"]) for f in findings] == [("k8s/secret.yaml", ["base64"])]


def test_the_cache_reads_only_new_blobs_and_still_reports_old_findings(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key, later = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.ADMIN, rng).key
    gitrepo.commit("add", **{"k.py": f"K = '{key}'\n", "a.txt": "a\n", "b.txt": "b\n"})
    _, first, err = history(cli, gitrepo.path)
    assert "1 finding; 3 blobs" in err
    _, again, err = history(cli, gitrepo.path)  # nothing changed: only the hit is re-read
    assert again == first
    assert "1 finding; 1 blobs" in err and "result was reused" in err
    gitrepo.commit("more", **{"c.txt": "c\n", "d.py": f"D = '{later}'\n"})
    _, third, err = history(cli, gitrepo.path)
    assert "2 findings; 3 blobs" in err  # k.py (a hit is always re-read), c.txt, d.py
    assert "history grew since the last scan: only the commits added were read" in err
    assert len(third) == 2
    for cache in (gitrepo.path / ".git" / "keysentry").iterdir():
        assert key.encode() not in cache.read_bytes() and later.encode() not in cache.read_bytes()


def test_a_damaged_cache_is_ignored_not_trusted(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    gitrepo.commit("add", **{"a.txt": "a\n", "k.py": f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n"})
    history(cli, gitrepo.path)
    cache = gitrepo.path / ".git" / "keysentry" / "clean-blobs"
    cache.write_bytes(cache.read_bytes()[:-3])  # torn write
    _, findings, err = history(cli, gitrepo.path)
    assert len(findings) == 1 and "known clean" not in err


def test_every_blob_listed_is_read_once_whichever_reader_takes_its_run(
    gitrepo: GitRepo, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keysentry.scanner.git import history
    from keysentry.scanner.git.repo import open_repo

    key = key_of(KeyKind.PROJECT, rng).key
    files = {f"f{i}.txt": rng.randbytes(20_000 + i).hex() for i in range(40)}
    gitrepo.commit("many", **files, **{"k.py": f"K = '{key}'\n"})
    monkeypatch.setattr(history, "_RUN_BYTES", 100_000)  # runs of a few blobs: many runs
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    started: list[int] = []
    real_thread = threading.Thread

    def counted(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("target") is history._scan_run:
            started.append(1)
        return real_thread(*args, **kwargs)

    monkeypatch.setattr(threading, "Thread", counted)
    repo = open_repo(str(gitrepo.path))
    scan = history.scan_blobs(repo, max_blob_size=1 << 20, cache=None, progress=False)
    listed = gitrepo("cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectsize)")
    sizes = [int(line.split()[1]) for line in listed.splitlines() if line.startswith("blob ")]
    assert len(started) == 4  # one reader per core: every one took runs
    assert scan.read == len(sizes) and scan.bytes == sum(sizes)
    assert len(scan.clean) + len(scan.hits) == len(sizes) == len(set(scan.clean + scan.hits))
    assert scan.hits == [gitrepo("rev-parse", "HEAD:k.py")]


def test_the_caches_are_tied_to_every_byte_of_every_detector_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keysentry.scanner.git import cache

    before = cache.detector_hash()
    assert len(before) == 16 and int(before, 16) >= 0  # 64 bits, in hex
    real = cache._read
    for name in cache._DETECTOR_MODULES:

        def edited(path: str, name: str = name) -> bytes:
            return real(path) + b"#" if path.endswith(f"/scanner/{name}") else real(path)

        monkeypatch.setattr(cache, "_read", edited)
        assert cache.detector_hash() != before, name
        monkeypatch.undo()
    assert cache.detector_hash() == before


def test_unreachable_keys_need_all_objects(gitrepo: GitRepo, rng: random.Random, cli: Any) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("init", **{"a.txt": "a\n"})
    (gitrepo.path / "dangling.txt").write_text(f"K = '{key}'\n")
    blob = gitrepo("hash-object", "-w", "dangling.txt")
    (gitrepo.path / "dangling.txt").unlink()
    assert history(cli, gitrepo.path)[:2] == (0, [])
    code, findings, _ = history(cli, gitrepo.path, "--all-objects")
    assert code == 1
    assert findings[0]["git"] == {"blob": blob, "reachable": False}


def test_a_stash_is_history_too(gitrepo: GitRepo, rng: random.Random, cli: Any) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo.write("a.txt", f"a\nK = '{key}'\n")
    gitrepo("stash", "-q")
    code, findings, _ = history(cli, gitrepo.path)
    assert code == 1
    assert "refs/stash" in findings[0]["git"]["refs"]


def test_a_shallow_clone_fails_loudly_unless_allowed(
    gitrepo: GitRepo, rng: random.Random, cli: Any, tmp_path: Path
) -> None:
    for i in range(3):
        gitrepo.commit(f"c{i}", **{"a.txt": f"{i}\n"})
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{gitrepo.path}", str(shallow))
    result = cli("scan", "--history", str(shallow))
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "shallow clone" in line and "fetch-depth: 0" in line and "--allow-shallow" in line
    allowed = cli("scan", "--history", "--allow-shallow", str(shallow))
    assert allowed.code == 0
    assert "note: shallow clone" in allowed.err


def test_an_empty_repository_says_so(repo: Path, cli: Any) -> None:
    result = cli("scan", "--history", str(repo))
    assert result.code == 0
    assert "no commits yet" in result.err


def test_a_bare_repository_is_scanned_without_a_working_tree(
    gitrepo: GitRepo, rng: random.Random, cli: Any, tmp_path: Path
) -> None:
    gitrepo.commit("add", **{"k.py": f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n"})
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(gitrepo.path), str(bare))
    code, findings, _ = history(cli, bare)
    assert code == 1
    assert findings[0]["git"]["in_working_tree"] is None
    assert findings[0]["git"]["at_head"] is True


def test_a_worktree_and_a_detached_head(
    gitrepo: GitRepo, rng: random.Random, cli: Any, tmp_path: Path
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo.commit("key", **{"k.py": f"K = '{key}'\n"})
    gitrepo("checkout", "-q", "--detach", "HEAD~1")
    tree = tmp_path / "wt"
    gitrepo("worktree", "add", "-q", str(tree), "main")
    code, findings, _ = history(cli, tree)
    assert code == 1
    assert findings[0]["git"]["refs"] == ["HEAD", "refs/heads/main"]
    assert findings[0]["git"]["at_head"] is True  # the worktree's HEAD is main
    assert (gitrepo.path / ".git" / "keysentry" / "clean-blobs").exists()  # one shared cache


def test_a_corrupt_object_is_named_and_makes_the_scan_incomplete(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    gitrepo.commit("init", **{"a.txt": "hello\n"})
    blob = gitrepo("rev-parse", "HEAD:a.txt")
    path = gitrepo.path / ".git" / "objects" / blob[:2] / blob[2:]
    os.chmod(path, 0o644)
    path.write_bytes(b"garbage")
    result = cli("scan", "--history", "--no-cache", str(gitrepo.path))
    assert result.code == 2
    assert f"warning: object {blob}: missing or corrupt object" in result.err
    assert "1 unreadable" in result.err
    assert "incomplete scan" in result.err
    accepted = cli("scan", "--history", "--no-cache", "--allow-incomplete", str(gitrepo.path))
    assert accepted.code == 0
    assert f"warning: object {blob}: missing or corrupt object" in accepted.err


def test_git_lfs_pointers_are_noted_not_fetched(gitrepo: GitRepo, cli: Any) -> None:
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 9\n"
    gitrepo.commit("lfs", **{"model.bin": pointer})
    result = cli("scan", "--history", str(gitrepo.path))
    assert "1 Git LFS pointers" in result.err


@pytest.mark.parametrize("fmt", ["text", "sarif", "json"])
def test_history_reports_never_hold_the_key(
    fmt: str, gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("add", **{"k.py": f"K = '{key}'\n"})
    result = cli("scan", "--history", "--format", fmt, str(gitrepo.path))
    assert result.code == 1
    assert key not in result.out + result.err
    assert "introduced" in result.out


def test_a_corrupt_pack_names_the_bad_object_and_scans_the_rest(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    noise = {f"n{i}.txt": rng.randbytes(3000).hex() for i in range(20)}
    gitrepo.commit("noise", **noise)
    gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={key}\n"})
    gitrepo("repack", "-q", "-a", "-d")
    victim = gitrepo("rev-parse", "HEAD:n7.txt")
    [pack] = (gitrepo.path / ".git" / "objects" / "pack").glob("*.pack")
    index = pack.with_suffix(".idx")
    listed = gitrepo("verify-pack", "-v", str(index)).splitlines()
    offset = next(int(line.split()[4]) for line in listed if line.startswith(victim))
    data = bytearray(pack.read_bytes())
    for at in range(offset + 40, offset + 240):  # inside its compressed content
        data[at] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    code, findings, err = history(cli, gitrepo.path, "--no-cache")
    assert code == 2
    assert f"warning: blob {victim}: not read: git cat-file stopped in the middle of it" in err
    assert "1 unreadable" in err and "incomplete scan" in err
    assert [f["path"] for f in findings] == ["k.env"]  # the rest was scanned
    code, findings, _ = history(cli, gitrepo.path, "--allow-incomplete")
    assert code == 1 and len(findings) == 1
    clean = (gitrepo.path / ".git" / "keysentry" / "clean-blobs").read_bytes()
    assert bytes.fromhex(victim) not in clean
    assert bytes.fromhex(gitrepo("rev-parse", "HEAD:n8.txt")) in clean


@pytest.mark.parametrize("mode", ["--history", "--staged", "--range", "files"])
def test_a_blob_the_detector_could_not_search_in_full_keeps_its_keys_and_is_never_clean(
    mode: str, gitrepo: GitRepo, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The detector raises IncompleteBlob when a bound on hostile input is reached; here a
    marker in the content stands in for that input."""
    from keysentry.scanner import pipeline
    from keysentry.scanner.findings import Blob, Finding, IncompleteBlob, findings_in
    from keysentry.scanner.git import history as history_source

    def bounded(blob: Blob, inline_allow: bool = True) -> list[Finding]:
        found = findings_in(blob, inline_allow)
        if b"HOSTILE" in blob.data:
            raise IncompleteBlob(blob.path, "too many candidates", found)
        return found

    monkeypatch.setattr(pipeline, "findings_in", bounded)
    monkeypatch.setattr(history_source, "findings_in", bounded)
    key = key_of(KeyKind.PROJECT, rng).key
    base = gitrepo.commit("init", **{"a.txt": "a\n"})
    gitrepo.write("k.env", f"HOSTILE\nOPENAI_API_KEY={key}\n")
    gitrepo("add", "k.env")
    if mode != "--staged":
        gitrepo.commit("leak")
    blob = gitrepo("rev-parse", ":k.env")
    args = {
        "--history": ["--history"],
        "--staged": ["--staged"],
        "--range": ["--range", f"{base}..HEAD"],
        "files": [],
    }[mode]
    result = cli("scan", *args, "--format", "json", str(gitrepo.path))
    assert result.code == 2
    assert len(result.json()["findings"]) == 1  # what it found is kept
    assert "not fully scanned: too many candidates" in result.err
    assert blob in result.err or mode == "files"
    clean = gitrepo.path / ".git" / "keysentry" / "clean-blobs"
    assert not clean.exists() or bytes.fromhex(blob) not in clean.read_bytes()
    assert key not in result.out + result.err
