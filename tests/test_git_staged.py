"""`scan --staged`: exactly the index content of staged additions and modifications."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import Any

import pytest

from conftest import GitRepo
from keygen import key_of
from keysentry.scanner.keys import KeyKind


def staged(cli: Any, gitrepo: GitRepo) -> tuple[int, list[dict[str, Any]]]:
    result = cli("scan", "--staged", "--format", "json", str(gitrepo.path))
    return result.code, result.json()["findings"] if result.out else []


def test_a_staged_key_is_found_at_its_line_in_the_initial_commit(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.write("app.py", f"import os\n\nKEY = '{key}'\n")
    gitrepo("add", "app.py")
    code, findings = staged(cli, gitrepo)
    assert code == 1
    assert [(f["path"], f["line"], f["column"]) for f in findings] == [("app.py", 3, 8)]


def test_partial_staging_scans_the_index_not_the_working_file(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.ADMIN, rng).key
    gitrepo.commit("init", **{"app.py": "a = 1\n"})
    gitrepo.write("app.py", "a = 1\nb = 2\n")
    gitrepo("add", "app.py")
    gitrepo.write("app.py", f"a = 1\nb = 2\nKEY = '{key}'\n")  # not staged
    assert staged(cli, gitrepo) == (0, [])
    gitrepo.write("app.py", "a = 1\n")
    gitrepo("reset", "-q")
    gitrepo.write("app.py", f"KEY = '{key}'\na = 1\n")
    gitrepo("add", "app.py")
    gitrepo.write("app.py", "a = 1\n")  # staged the key, then removed it from the file only
    code, findings = staged(cli, gitrepo)
    assert code == 1 and findings[0]["line"] == 1


def test_a_key_already_in_head_does_not_block_an_unrelated_change(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    gitrepo.commit("old key", **{"cfg.py": f"OLD = '{old}'\n"})
    gitrepo.write("cfg.py", f"OLD = '{old}'\nX = 1\n")
    gitrepo("add", "cfg.py")
    assert staged(cli, gitrepo) == (0, [])
    gitrepo.write("cfg.py", f"OLD = '{old}'\nX = 1\nNEW = '{new}'\n")
    gitrepo("add", "cfg.py")
    code, findings = staged(cli, gitrepo)
    assert code == 1
    assert [f["kind"] for f in findings] == ["service-account"]


def test_renames_deletions_and_binary_files(gitrepo: GitRepo, rng: random.Random, cli: Any) -> None:
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.LEGACY_USER, rng).key
    gitrepo.commit("init", **{"a.py": f"K = '{old}'\n" + "x = 1\n" * 20, "gone.txt": "bye\n"})
    gitrepo("mv", "a.py", "b.py")  # a rename keeps its old key: not new
    gitrepo("rm", "-q", "gone.txt")  # a deletion has nothing to scan
    (gitrepo.path / "blob.bin").write_bytes(b"\0\1\2" + new.encode() + b"\0")
    gitrepo("add", "blob.bin")
    code, findings = staged(cli, gitrepo)
    assert code == 1
    assert [(f["path"], f["binary"], f["offset"]) for f in findings] == [("blob.bin", True, 3)]


def test_a_merge_in_progress_scans_what_the_merge_brings(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.ADMIN, rng).key
    gitrepo.commit("init", **{"a.txt": "base\n"})
    gitrepo("checkout", "-q", "-b", "feature")
    gitrepo.commit("feature key", **{"f.env": f"ADMIN={key}\n"})
    gitrepo("checkout", "-q", "main")
    gitrepo.commit("main work", **{"a.txt": "main\n"})
    gitrepo("merge", "-q", "--no-commit", "--no-ff", "feature")
    code, findings = staged(cli, gitrepo)
    assert code == 1 and [f["path"] for f in findings] == ["f.env"]


def test_submodule_entries_are_skipped(gitrepo: GitRepo, cli: Any) -> None:
    gitrepo.commit("init", **{"a.txt": "a\n"})
    head = gitrepo("rev-parse", "HEAD")
    gitrepo("update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib")
    assert staged(cli, gitrepo) == (0, [])


def test_nothing_staged_passes_and_says_so(gitrepo: GitRepo, cli: Any) -> None:
    gitrepo.commit("init", **{"a.txt": "a\n"})
    result = cli("scan", "--staged", str(gitrepo.path))
    assert result.code == 0
    assert "0 findings; 0 blobs" in result.err


def test_a_bare_repository_has_nothing_staged(gitrepo: GitRepo, cli: Any, tmp_path: Any) -> None:
    gitrepo.commit("init", **{"a.txt": "a\n"})
    bare = tmp_path / "bare.git"
    gitrepo("clone", "-q", "--bare", str(gitrepo.path), str(bare))
    result = cli("scan", "--staged", str(bare))
    assert result.code == 2
    assert "bare repository" in result.err


def test_outside_a_repository_is_a_clear_error(tmp_path: Any, cli: Any) -> None:
    result = cli("scan", "--staged", str(tmp_path))
    assert result.code == 2
    assert result.err.strip() == f"keysentry: error: {tmp_path} is not inside a git repository"


def test_the_hook_path_imports_no_sdk(gitrepo: GitRepo) -> None:
    """The pre-commit hook runs on every commit: boto3, hvac, azure and openai stay unloaded."""
    import subprocess
    import sys

    gitrepo.write("a.py", "x = 1\n")
    gitrepo("add", "a.py")
    probe = (
        "import sys; from keysentry.cli import main; main(['scan', '--staged', '-q', sys.argv[1]]);"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'boto3', 'botocore', 'hvac', 'azure', 'openai', 'httpx2', 'requests'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(gitrepo.path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_a_staged_blob_over_the_size_limit_is_named_and_never_held_in_memory(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.commit("init", **{"a.txt": "a\n"})
    with open(gitrepo.path / "big.bin", "wb") as big:
        for _ in range(96):
            big.write(bytes(1 << 20))
        big.write(f"K={key}\n".encode())
    gitrepo("add", "big.bin")
    blob = gitrepo("rev-parse", ":big.bin")
    probe = (
        "import sys; from keysentry.cli import main;"
        "code = main(['scan', '--staged', '--max-file-size', '1M', sys.argv[1]]);"
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr);"
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(gitrepo.path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert f"skipped big.bin (staged blob {blob}): 100,663," in done.stderr
    assert "larger than the size limit (1,048,576 bytes; see --max-file-size)" in done.stderr
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    assert peak_kb < 80 << 10  # far below the blob's 96 MB: it was never read into memory
    assert key not in done.stdout + done.stderr
