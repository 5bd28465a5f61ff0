"""`scan --history` after the history grew: only what the added commits bring is read, and
the result is the one a scan from scratch gives; whatever it cannot carry over exactly (lost
commits, a ref at an old commit, an unreadable blob) is scanned from scratch."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import GitRepo
from keygen import key_of
from keysentry.scanner.keys import KeyKind

GREW = "history grew since the last scan"


def history(cli: Any, path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = cli("scan", "--history", "--format", "json", *args, str(path))
    findings = result.json()["findings"] if result.out else []
    return result.code, findings, result.err


def a_key(rng: random.Random) -> str:
    return key_of(KeyKind.PROJECT, rng).key


def base(gitrepo: GitRepo, rng: random.Random) -> dict[str, str]:
    """A history with three keys: one still at HEAD, one removed, one on a side branch;
    returns the commits by name."""
    commits = {"init": gitrepo.commit("init", **{"a.txt": "a\n"})}
    commits["leak"] = gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={a_key(rng)}\n"})
    gitrepo.commit("oops", **{"gone.env": f"OPENAI_API_KEY={a_key(rng)}\n"})
    gitrepo.commit("fix", **{"gone.env": None})  # a removal the replay must keep
    gitrepo("checkout", "-q", "-b", "side")
    commits["side"] = gitrepo.commit("side", **{"s.env": f"KEY={a_key(rng)}\n"})
    gitrepo("checkout", "-q", "main")
    commits["more"] = gitrepo.commit("more", **{"b.txt": "b\n"})
    return commits


def add_a_key(gitrepo: GitRepo, rng: random.Random, commits: dict[str, str]) -> None:
    gitrepo.commit("new key", **{"n.py": f"N = '{a_key(rng)}'\n", "c.txt": "c\n"})


def remove_the_old_key(gitrepo: GitRepo, rng: random.Random, commits: dict[str, str]) -> None:
    gitrepo.commit("remove", **{"k.env": None})


def merge_the_side_branch(gitrepo: GitRepo, rng: random.Random, commits: dict[str, str]) -> None:
    gitrepo("merge", "-q", "--no-ff", "-m", "merge side", "side")


def re_add_an_old_key_blob(gitrepo: GitRepo, rng: random.Random, commits: dict[str, str]) -> None:
    remove_the_old_key(gitrepo, rng, commits)
    gitrepo("revert", "--no-edit", "HEAD")


def branch_from_an_old_commit(
    gitrepo: GitRepo, rng: random.Random, commits: dict[str, str]
) -> None:
    gitrepo("checkout", "-q", "-b", "old", commits["init"])
    gitrepo.commit("on old", **{"o.env": f"KEY={a_key(rng)}\n"})
    gitrepo("checkout", "-q", "main")


def tag_an_old_commit(gitrepo: GitRepo, rng: random.Random, commits: dict[str, str]) -> None:
    gitrepo("tag", "v0", commits["leak"])


def delete_the_side_branch(gitrepo: GitRepo, rng: random.Random, commits: dict[str, str]) -> None:
    gitrepo("branch", "-q", "-D", "side")
    gitrepo.commit("after", **{"d.txt": "d\n"})


Change = Callable[[GitRepo, random.Random, dict[str, str]], None]


@pytest.mark.parametrize(
    ("change", "carried_over"),
    [
        (add_a_key, True),
        (remove_the_old_key, True),
        (merge_the_side_branch, True),
        (re_add_an_old_key_blob, True),
        (branch_from_an_old_commit, False),  # the replay never kept the old commit's state
        (tag_an_old_commit, False),
        (delete_the_side_branch, False),  # commits were lost: counts shrink
    ],
)
def test_a_grown_history_gives_what_a_scan_from_scratch_gives(
    change: Change, carried_over: bool, gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    commits = base(gitrepo, rng)
    history(cli, gitrepo.path)  # the last scan, cached
    change(gitrepo, rng, commits)
    code, grown, err = history(cli, gitrepo.path)
    assert (GREW in err) is carried_over, err
    fresh_code, fresh, _ = history(cli, gitrepo.path, "--no-cache")
    assert (code, grown) == (fresh_code, fresh)
    code, again, err = history(cli, gitrepo.path)  # and the carried-over result is reused
    assert "result was reused" in err and again == fresh


def test_only_the_blobs_the_added_commits_bring_are_read(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    gitrepo.commit("many", **{f"f{i}.txt": f"file {i}\n" for i in range(30)})
    gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={a_key(rng)}\n"})
    history(cli, gitrepo.path)
    gitrepo.commit("two", **{"x.txt": "x\n", "y.txt": "y\n"})
    _, findings, err = history(cli, gitrepo.path)
    assert "1 finding; 3 blobs" in err and GREW in err  # x.txt, y.txt and the key's blob
    assert len(findings) == 1


def test_a_new_blob_that_cannot_be_read_is_scanned_from_scratch_and_named(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    gitrepo.commit("leak", **{"k.env": f"OPENAI_API_KEY={a_key(rng)}\n"})
    history(cli, gitrepo.path)
    gitrepo.commit("new", **{"n.txt": "n\n"})
    blob = gitrepo("rev-parse", "HEAD:n.txt")
    loose = gitrepo.path / ".git" / "objects" / blob[:2] / blob[2:]
    loose.chmod(0o600)
    loose.write_bytes(b"not a zlib stream")
    result = cli("scan", "--history", str(gitrepo.path))
    assert result.code == 2 and GREW not in result.err
    assert blob in result.err and "incomplete scan" in result.err
