"""A hostile repository in a fleet scan forges nothing in any report and leaks no key.

Its file names, commit author and refs are the attacker's: markup in the HTML report, control
characters in the text report, a key written into an author name or a branch name. A clone URL
may carry credentials. The datastore and every report must hold the key in redacted form
only, show the attacker's text as text, and never show the URL's password.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from leaks import assert_nowhere

from conftest import GitRepo
from keygen import key_of
from keysentry.scanner.keys import KeyKind

pytest.importorskip("sqlalchemy", reason="the fleet extra is not installed")

from keysentry.fleet import job
from keysentry.fleet.listing import Repository, from_file
from keysentry.fleet.store import Store

MARKUP = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def test_hostile_names_authors_and_refs_are_text_in_every_fleet_report(
    gitrepo: GitRepo, tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    key, other = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    name = f"{MARKUP}\x1b[31m.py"
    gitrepo.write(name, f"K = '{key}'\n")
    gitrepo("add", "--", name)
    gitrepo("-c", f"user.name=Eve {other} \x1b[2J{MARKUP}", "commit", "-q", "-m", "x")
    gitrepo("branch", f"leak-{key[8:20]}")
    store = str(tmp_path / "fleet.db")
    scan_id, _ = Store(store).open_scan("hostile", [str(gitrepo.path)], fresh=True)
    task = job.Task(
        Repository(f"{MARKUP}\x1b]0;title\x07\n{key}", str(gitrepo.path)),
        scan_id,
        store,
        str(tmp_path / "cache"),
        False,
        None,
        50 << 20,
    )
    job.scan_repository(task)
    outputs = {
        fmt: cli("fleet", "report", "--store", store, "--format", fmt)
        for fmt in ("text", "json", "sarif", "html")
    }
    page = outputs["html"].out
    assert "<script>" not in page and "<img" not in page  # only the page's own markup
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "\x1b" not in "".join(o.out + o.err for o in outputs.values())
    dump = "\n".join(sqlite3.connect(store).iterdump())
    for secret in (key, other):
        assert_nowhere(
            secret, dump, *(o.out + o.err for o in outputs.values()), under=[tmp_path / "fleet.db"]
        )


def test_a_clone_url_password_reaches_no_store_and_no_report(tmp_path: Path, cli: Any) -> None:
    listed = tmp_path / "repos.txt"
    password = "hunter2-" + "x" * 12
    listed.write_text(f"http://bob:{password}@127.0.0.1:9/acme/app.git\n")
    (repo,) = from_file(listed)
    assert password not in repo.name
    store = str(tmp_path / "fleet.db")
    scan_id, _ = Store(store).open_scan("creds", [repo.url], fresh=True)
    task = job.Task(repo, scan_id, store, str(tmp_path / "cache"), False, None, 50 << 20)
    with pytest.raises(Exception) as failed:
        job.scan_repository(task)  # nothing listens on port 9
    assert password not in str(failed.value)
    Store(store).record_failure(scan_id, job._failed_result(repo), str(failed.value), 1)
    text = cli("fleet", "report", "--store", store).out
    dump = "\n".join(sqlite3.connect(store).iterdump())
    assert password not in text and password not in dump
    assert "http://127.0.0.1:9/acme/app" in text
