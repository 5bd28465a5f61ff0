"""`scan --since` and `scan --range`: only what the range's commits introduced."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from conftest import GitRepo, git
from keygen import key_of
from keysentry.scanner.keys import KeyKind

ZEROS = "0" * 40


def scan_range(cli: Any, path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = cli("scan", "--format", "json", *args, str(path))
    findings = result.json()["findings"] if result.out else []
    return result.code, findings, result.err


def test_only_keys_introduced_in_the_range_are_reported(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.ADMIN, rng).key
    base = gitrepo.commit("old", **{"old.py": f"K = '{old}'\n"})
    gitrepo.commit("clean", **{"a.txt": "a\n"})
    introduced = gitrepo.commit("new", **{"new.py": f"K = '{new}'\n"})
    head = gitrepo.commit("after", **{"b.txt": "b\n"})
    code, findings, _ = scan_range(cli, gitrepo.path, "--range", f"{base}..{head}")
    assert code == 1
    assert [(f["path"], f["git"]["introduced"]["commit"]) for f in findings] == [
        ("new.py", introduced)
    ]
    assert findings[0]["git"]["introduced"]["line"] == 1
    assert scan_range(cli, gitrepo.path, "--since", base)[1] == findings
    assert scan_range(cli, gitrepo.path, "--range", f"{introduced}..{head}")[:2] == (0, [])


def test_a_new_branch_scans_what_no_other_branch_has(
    gitrepo: GitRepo, rng: random.Random, cli: Any, tmp_path: Path
) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.ADMIN, rng).key
    gitrepo.commit("old", **{"old.py": f"K = '{old}'\n"})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(gitrepo.path), str(clone))
    branch = GitRepo(clone)
    branch.day = 10
    branch("checkout", "-q", "-b", "topic")
    tip = branch.commit("topic", **{"new.py": f"K = '{new}'\n"})
    code, findings, err = scan_range(cli, clone, "--range", f"{ZEROS}..{tip}")
    assert code == 1
    assert [f["path"] for f in findings] == ["new.py"]
    assert "new branch" in err


def test_a_force_push_whose_old_tip_is_gone(
    gitrepo: GitRepo, rng: random.Random, cli: Any, tmp_path: Path
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("base", **{"a.txt": "a\n"})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(gitrepo.path), str(clone))
    worker = GitRepo(clone)
    worker.day = 5
    worker("checkout", "-q", "-b", "topic")
    tip = worker.commit("rewritten", **{"k.py": f"K = '{key}'\n"})
    gone = "1234567" * 5 + "89abc"
    code, findings, err = scan_range(cli, clone, "--range", f"{gone}..{tip}")
    assert code == 1 and [f["path"] for f in findings] == ["k.py"]
    assert "force push" in err


def test_a_force_push_with_both_tips_present(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    base = gitrepo.commit("base", **{"a.txt": "a\n"})
    before = gitrepo.commit("old work", **{"b.txt": "b\n"})
    gitrepo("reset", "-q", "--hard", base)
    after = gitrepo.commit("new work", **{"k.py": f"K = '{key}'\n"})
    code, findings, _ = scan_range(cli, gitrepo.path, "--range", f"{before}..{after}")
    assert code == 1 and [f["path"] for f in findings] == ["k.py"]


def test_a_merge_in_the_range_brings_the_side_branch_keys(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    base = gitrepo.commit("base", **{"a.txt": "a\n"})
    gitrepo("checkout", "-q", "-b", "side")
    side = gitrepo.commit("side", **{"s.env": f"K={key}\n"})
    gitrepo("checkout", "-q", "main")
    gitrepo.commit("main", **{"a.txt": "b\n"})
    gitrepo("merge", "-q", "--no-ff", "-m", "merge", "side")
    head = gitrepo("rev-parse", "HEAD")
    code, findings, _ = scan_range(cli, gitrepo.path, "--range", f"{base}..{head}")
    assert code == 1
    assert [(f["path"], f["git"]["introduced"]["commit"]) for f in findings] == [("s.env", side)]


def test_bad_ranges_are_one_line_errors(gitrepo: GitRepo, cli: Any) -> None:
    gitrepo.commit("base", **{"a.txt": "a\n"})
    for args, message in (
        (("--range", "HEAD"), "--range takes A..B"),
        (("--range", "HEAD..nope"), "'nope' is not a commit"),
        (("--since", "nope"), "'nope' is not a commit"),
        (("--since", "HEAD", "--staged"), "cannot be combined"),
    ):
        result = cli("scan", *args, str(gitrepo.path))
        assert result.code == 2, args
        (line,) = result.err.strip().splitlines()
        assert message in line, line


def test_an_empty_range_passes_and_says_so(gitrepo: GitRepo, cli: Any) -> None:
    gitrepo.commit("base", **{"a.txt": "a\n"})
    result = cli("scan", "--range", "HEAD..HEAD", str(gitrepo.path))
    assert result.code == 0
    assert "no commits" in result.err


def test_a_shallow_clone_covers_a_range_only_when_it_has_its_start(
    gitrepo: GitRepo, cli: Any, tmp_path: Path
) -> None:
    for i in range(3):
        gitrepo.commit(f"c{i}", **{"a.txt": f"{i}\n"})
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "2", f"file://{gitrepo.path}", str(shallow))
    covered = cli("scan", "--range", "HEAD~1..HEAD", str(shallow))
    assert covered.code == 0 and "note: shallow clone" in covered.err
    for span in (f"{ZEROS}..HEAD", f"{'1234567' * 5}89abc..HEAD"):
        result = cli("scan", "--range", span, str(shallow))
        assert result.code == 2, span
        (line,) = result.err.strip().splitlines()
        assert "shallow clone" in line and "fetch-depth: 0" in line
    assert cli("scan", "--range", f"{ZEROS}..HEAD", "--allow-shallow", str(shallow)).code == 0


def test_several_ranges_are_scanned_together(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    a, b = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.ADMIN, rng).key
    base = gitrepo.commit("base", **{"x.txt": "x\n"})
    first = gitrepo.commit("a", **{"a.py": f"A = '{a}'\n"})
    gitrepo("checkout", "-q", "-b", "other", base)
    second = gitrepo.commit("b", **{"b.py": f"B = '{b}'\n"})
    code, findings, _ = scan_range(
        cli, gitrepo.path, "--range", f"{base}..{first}", "--range", f"{base}..{second}"
    )
    assert code == 1
    assert [f["path"] for f in findings] == ["a.py", "b.py"]


def test_a_blob_over_the_size_limit_in_a_range_is_named_not_read(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    base = gitrepo.commit("init", **{"a.txt": "a\n"})
    commit = gitrepo.commit("big", **{"big.txt": "x" * (2 << 20) + f"\nK={key}\n"})
    blob = gitrepo("rev-parse", "HEAD:big.txt")
    result = cli("scan", "--range", f"{base}..HEAD", "--max-file-size", "1M", str(gitrepo.path))
    assert result.code == 0
    assert f"skipped big.txt in commit {commit[:12]} (blob {blob}): 2,097," in result.err
    whole = cli("scan", "--range", f"{base}..HEAD", str(gitrepo.path))
    assert whole.code == 1
    assert key not in result.out + result.err + whole.out + whole.err


def test_a_submodule_commit_in_a_range_is_passed_over_and_a_missing_blob_is_unread(
    gitrepo: GitRepo, cli: Any
) -> None:
    base = gitrepo.commit("init", **{"a.txt": "a\n"})
    # A gitlink: a commit of another repository, which this one never holds.
    gitrepo("update-index", "--add", "--cacheinfo", f"160000,{'ab' * 20},vendor/lib")
    submodule = gitrepo.commit("add a submodule")
    assert scan_range(cli, gitrepo.path, "--range", f"{base}..{submodule}")[0] == 0
    # A blob this repository does not hold (as in a partial clone): no clean verdict.
    missing = gitrepo.commit("add a blob", **{"b.txt": "soon gone\n"})
    blob = gitrepo("rev-parse", f"{missing}:b.txt")
    (gitrepo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    code, _, err = scan_range(cli, gitrepo.path, "--range", f"{submodule}..{missing}")
    assert code == 2
    assert "not in the object database" in err
