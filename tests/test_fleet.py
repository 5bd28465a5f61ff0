"""Fleet scans end to end, on real components: bare repositories served by `git http-backend`
over HTTP, an organisation listed by the real PyGithub client from a local GitHub API, a real
Dask LocalCluster with worker processes, SQLite and a real PostgreSQL server, keys verified
against the local OpenAI API, and the HTML report read in a real headless Chromium.

The module shares one cluster and one planted organisation (starting them is most of the
cost); each test scans into a store and a cache directory of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import GitRepo, git
from keygen import key_of
from keysentry.scanner.keys import KeyKind
from keysentry.verify import client as api
from servers.git_http import GitHttpServer
from servers.github_api import GitHubServer
from servers.openai_api import OpenAIServer

pytest.importorskip("distributed", reason="the fleet extra is not installed")
pytest.importorskip("sqlalchemy", reason="the fleet extra is not installed")

from keysentry.fleet import job
from keysentry.fleet.listing import Repository, from_github
from keysentry.fleet.store import Store

sys.path.insert(0, str(Path(__file__).parent / "adversarial"))  # leaks.assert_nowhere

ORG = "acme"


@dataclass
class Fleet:
    """The planted organisation: repositories (by name), the keys in each, the servers."""

    root: Path
    git_server: GitHttpServer
    github: GitHubServer
    openai: OpenAIServer
    keys: dict[str, str] = field(default_factory=dict)  # label -> key
    repos: dict[str, GitRepo] = field(default_factory=dict)  # name -> work tree
    in_repo: dict[str, set[str]] = field(default_factory=dict)  # name -> key labels

    def push(self, name: str) -> None:
        self.repos[name]("push", "-q", "--mirror", str(self.root / "served" / ORG / f"{name}.git"))

    def repo_url(self, name: str) -> str:
        return self.git_server.url(f"{ORG}/{name}.git")


def _plant(root: Path) -> Fleet:
    rng = random.Random("test_fleet")
    git_server = GitHttpServer(root / "served").start()
    github = GitHubServer().start()
    openai = OpenAIServer().start()
    github.page_cap = 2  # a small organisation still takes three pages
    fleet = Fleet(root, git_server, github, openai)
    for label in ("live", "shared", "invalid", "removed", "fork", "archived", "slow"):
        fleet.keys[label] = key_of(KeyKind.PROJECT, rng).key
    fleet.keys["admin"] = key_of(KeyKind.ADMIN, rng).key
    openai.org.project("proj_a")
    for label in ("live", "shared", "fork", "archived", "slow"):
        openai.org.add_key(fleet.keys[label], "proj_a", id=f"key_{label}")
    openai.org.add_key(fleet.keys["admin"], None, id="key_admin")
    k = fleet.keys
    layout: dict[str, list[dict[str, str | None]]] = {
        "web": [
            {"app.py": f"OPENAI_API_KEY = '{k['live']}'\n", "README.md": "web\n"},
            {"config__prod.env": f"OPENAI_API_KEY={k['removed']}\n"},
            {"config__prod.env": None},
            {"lib.py": f"SHARED = '{k['shared']}'\n"},
        ],
        "api": [{"settings.py": f"KEY = '{k['shared']}'\nOTHER = '{k['invalid']}'\n"}],
        "tools": [{"tool.py": "print('no key here')\n"}, {"tool.py": "print('still none')\n"}],
        "docs": [{"index.md": "# docs\n"}],
        "forked": [{"x.py": f"K = '{k['fork']}'\n"}],
        "old": [{"y.py": f"K = '{k['archived']}'\n"}],
    }
    labels = {"web": {"live", "removed", "shared"}, "api": {"shared", "invalid"}}
    labels |= {"forked": {"fork"}, "old": {"archived"}, "tools": set(), "docs": set()}
    for name, commits in layout.items():
        path = root / "work" / name
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        repo = GitRepo(path)
        for number, files in enumerate(commits):
            repo.commit(f"{name} {number}", **files)
        fleet.repos[name] = repo
        fleet.in_repo[name] = labels[name]
        bare = root / "served" / ORG / f"{name}.git"
        git(root, "init", "-q", "--bare", str(bare))  # HEAD: master, never pushed
        fleet.push(name)
        github.add(
            ORG,
            name,
            fleet.repo_url(name),
            fork=name == "forked",
            archived=name == "old",
        )
    return fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    planted = _plant(tmp_path_factory.mktemp("fleet"))
    yield planted
    planted.git_server.stop()
    planted.github.stop()
    planted.openai.stop()


@pytest.fixture(scope="module")
def cluster(fleet: Fleet) -> Iterator[str]:
    """Two worker processes, one thread each; the admin key in their environment (workers read
    it there: it never travels in a task)."""
    from keysentry.fleet.job import _distributed

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_ADMIN_KEY", fleet.keys["admin"])
        running = _distributed().LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
            death_timeout=20,
        )
    yield running.scheduler_address
    running.close()


@pytest.fixture
def openai_env(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> OpenAIServer:
    monkeypatch.setenv("OPENAI_BASE_URL", fleet.openai.base_url)
    api._breakers.clear()
    fleet.openai.requests.clear()
    return fleet.openai


def scan_args(fleet: Fleet, cluster: str, store: str, cache: Path, *more: str) -> list[str]:
    return [
        "fleet",
        "scan",
        "--github-org",
        ORG,
        "--github-url",
        fleet.github.base_url,
        "--store",
        store,
        "--scheduler",
        cluster,
        "--cache-dir",
        str(cache),
        *more,
    ]


def report(cli: Any, store: str, *more: str) -> Any:
    done = cli("fleet", "report", "--store", store, "--format", "json", *more)
    assert done.code in (0, 1, 3), done.err
    return done.json()


def key_labels(fleet: Fleet, data: dict[str, Any]) -> dict[str, set[str]]:
    """label -> the repositories the report places that key in."""
    by_redacted = {}
    for label, key in fleet.keys.items():
        by_redacted[key[:8] + "..." + key[-4:]] = label
    placed: dict[str, set[str]] = {}
    for entry in data["keys"]:
        label = next(v for r, v in by_redacted.items() if entry["redacted"] == r)
        placed[label] = {o["repository"].split("/")[-1] for o in entry["occurrences"]}
    return placed


def expected_placement(fleet: Fleet, names: set[str]) -> dict[str, set[str]]:
    placed: dict[str, set[str]] = {}
    for name in names:
        for label in fleet.in_repo[name]:
            placed.setdefault(label, set()).add(name)
    return placed


SOURCES = {"web", "api", "tools", "docs"}


def test_an_org_scan_fills_the_store_verifies_each_key_once_and_reruns_only_the_new_commit(
    fleet: Fleet, cluster: str, openai_env: OpenAIServer, tmp_path: Path, cli: Any
) -> None:
    store, cache = str(tmp_path / "fleet.db"), tmp_path / "cache"
    fleet.github.secondary_limit(1)  # the first page answers 403 secondary: retried after 1 s
    done = cli(*scan_args(fleet, cluster, store, cache, "--verify"))
    assert done.code == 3, done.err  # a live key was found
    assert "4/4 repositories" in done.err  # the progress line
    # Six repositories, two a page: three pages found by their Link headers; the first asked
    # twice (the secondary rate limit's 403, then after its Retry-After).
    pages = [f"/orgs/{ORG}/repos?per_page=100&type=all"] * 2 + [
        f"/orgs/{ORG}/repos?page={n}&per_page=100&type=all" for n in (2, 3)
    ]
    assert fleet.github.page_requests(ORG) == pages

    data = report(cli, store)
    assert key_labels(fleet, data) == expected_placement(fleet, SOURCES)
    verdicts = {e["redacted"][-4:]: e["verdict"] for e in data["keys"]}
    assert verdicts[fleet.keys["live"][-4:]] == "live"
    assert verdicts[fleet.keys["invalid"][-4:]] == "invalid"
    # Each distinct key was verified once across the fleet: `shared` is in two repositories.
    assert openai_env.requests["GET /v1/models"] == 4
    live = next(e for e in data["keys"] if e["verdict"] == "live")
    assert live["revoke_command"].startswith("keysentry revoke --project proj_a --key-id key_")
    removed = next(e for e in data["keys"] if e["redacted"][-4:] == fleet.keys["removed"][-4:])
    (where,) = removed["occurrences"]
    assert (where["path"], where["removed"] is not None) == ("config/prod.env", True)

    first = Store(store)
    rows = {r["name"].split("/")[-1]: r for r in first.scan_rows(1)}
    assert rows["tools"]["blobs"] == 2 and rows["web"]["blobs"] == 4  # every blob once

    # One new commit in one repository; the rerun reads its new blobs and, for the other
    # repositories, only the blobs that hold keys (to recover the keys, never stored).
    fleet.repos["tools"].commit("new", **{"new.py": "print('new file')\n"})
    fleet.push("tools")
    again = cli(*scan_args(fleet, cluster, store, cache, "--verify"))
    assert again.code == 3, again.err
    rows = {r["name"].split("/")[-1]: r for r in first.scan_rows(2)}
    assert rows["tools"]["blobs"] == 1  # only the new file: the old two are known clean
    assert rows["docs"]["blobs"] == 0
    assert rows["api"]["blobs"] == 1 and rows["web"]["blobs"] == 3  # the hit blobs only
    assert openai_env.requests["GET /v1/models"] == 4  # no key verified twice
    assert first.counts()["occurrences"] == 5  # nothing duplicated
    assert key_labels(fleet, report(cli, store)) == expected_placement(fleet, SOURCES)
    dump = "\n".join(sqlite3.connect(store).iterdump())
    from leaks import assert_nowhere

    for key in fleet.keys.values():
        assert_nowhere(key, dump, done.out, done.err, again.err, under=[tmp_path / "fleet.db"])


def test_forks_and_archived_repositories_are_scanned_when_asked_and_since_filters_reports(
    fleet: Fleet, cluster: str, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = str(tmp_path / "fleet.db")
    args = scan_args(fleet, cluster, store, tmp_path / "cache", "--forks", "--archived", "-q")
    args.remove("--scheduler")
    args.remove(cluster)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster)  # the cluster named the Dask way
    assert cli(*args).code == 1
    placed = key_labels(fleet, report(cli, store))
    assert placed == expected_placement(fleet, SOURCES | {"forked", "old"})
    assert all(e["verdict"] is None for e in report(cli, store)["keys"])  # no --verify
    # --since: what the store first saw on or after a date.
    assert len(report(cli, store, "--since", "2000-01-01")["keys"]) == 6
    assert report(cli, store, "--since", "2999-01-01")["keys"] == []
    assert cli("fleet", "report", "--store", store, "--since", "soon").code == 2


def test_the_html_report_shows_every_planted_key_with_its_repositories_in_a_browser(
    fleet: Fleet, cluster: str, openai_env: OpenAIServer, tmp_path: Path, cli: Any
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    store, page_file = str(tmp_path / "fleet.db"), tmp_path / "report.html"
    assert cli(*scan_args(fleet, cluster, store, tmp_path / "cache", "--verify", "-q")).code == 3
    done = cli("fleet", "report", "--store", store, "--format", "html", "-o", str(page_file))
    assert done.code == 3, done.err
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.goto(page_file.as_uri())
        seen = page.inner_text("body")
        for label, repos in expected_placement(fleet, SOURCES).items():
            key = fleet.keys[label]
            card = page.locator(".key:not(.live-key)", has_text=key[:8] + "..." + key[-4:])
            assert card.count() == 1, label
            assert card.first.is_visible()
            shown = set(card.first.locator("td.repo").all_inner_texts())
            assert {r.split("/")[-1] for r in shown} == repos
            commits = card.first.locator("td.commit").all_inner_texts()
            assert all(len(c) == 12 for c in commits)  # each introducing commit, shortened
        # Live keys come first, each with the command that revokes it.
        first_section = page.locator("main section h2").nth(0).inner_text()
        assert first_section.startswith("Live keys")
        live_cards = page.locator("#live .live-key")
        assert live_cards.count() == 2  # live and shared
        assert all("keysentry revoke --project proj_a" in t for t in live_cards.all_inner_texts())
        assert page.locator("#timeline circle.exposure").count() == 5
        assert page.locator("#timeline svg").is_visible()
        browser.close()
    from leaks import assert_nowhere

    for key in fleet.keys.values():
        assert_nowhere(key, seen, under=[page_file])


def test_a_worker_killed_mid_task_is_retried_and_nothing_is_lost_or_duplicated(
    fleet: Fleet, cluster: str, tmp_path: Path
) -> None:
    from keysentry.fleet.job import _distributed

    repos = [Repository(f"{ORG}/{n}", fleet.repo_url(n)) for n in sorted(SOURCES)]
    store = str(tmp_path / "fleet.db")
    fleet.git_server.stall(f"{ORG}/web.git", 8.0)  # its clone hangs: the worker is killed then
    hits_before = fleet.git_server.hits[f"{ORG}/web.git"]
    api_before = fleet.git_server.hits[f"{ORG}/api.git"]
    options = job.Options(store, tmp_path / "cache", progress=False)
    outcome: list[job.Outcome] = []
    with _distributed().Client(cluster) as client:
        pids = client.run(os.getpid)
        runner = threading.Thread(
            target=lambda: outcome.append(job.run(repos, "t", options, client))
        )
        runner.start()
        victim = _worker_processing(client, fleet, "web", hits_before)
        os.kill(pids[victim], signal.SIGKILL)
        runner.join(60)
    (result,) = outcome
    assert (result.failed, result.scanned) == ([], 4)
    # The stalled request, then a whole clone again (at least refs, then the pack): the task
    # was redone. How many requests a clone makes is git's business, so no exact count.
    web = fleet.git_server.hits[f"{ORG}/web.git"] - hits_before
    api = fleet.git_server.hits[f"{ORG}/api.git"] - api_before
    assert api >= 2 and web >= 1 + 2
    saved = Store(store)
    assert saved.counts()["occurrences"] == 5  # web 3 + api 2, each once
    rows = saved.scan_rows(result.scan_id)
    assert sorted(r["name"] for r in rows) == sorted(r.name for r in repos)
    assert all(r["status"] == "ok" for r in rows)


def _worker_processing(client: Any, fleet: Fleet, name: str, hits_before: int) -> str:
    """The address of the worker running the task of `name` once its clone has reached the
    server (the task's key carries a hash of the repository's URL)."""
    digest = hashlib.sha256(fleet.repo_url(name).encode()).hexdigest()[:16]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if fleet.git_server.hits[f"{ORG}/{name}.git"] > hits_before:
            for worker, keys in client.processing().items():
                if any(str(k).startswith(f"keysentry-scan-{digest}-") for k in keys):
                    return str(worker)
        time.sleep(0.05)
    raise AssertionError(f"no worker took {name}")


def test_a_repository_that_cannot_be_cloned_is_retried_then_reported_and_the_scan_incomplete(
    fleet: Fleet, cluster: str, tmp_path: Path, cli: Any
) -> None:
    listed = tmp_path / "repos.txt"
    missing = fleet.git_server.url(f"{ORG}/gone.git")
    listed.write_text(f"{fleet.repo_url('docs')}\n{missing}\n")
    store = str(tmp_path / "fleet.db")
    args = [
        "fleet",
        "scan",
        "--repos",
        str(listed),
        "--store",
        store,
        "--scheduler",
        cluster,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--retries",
        "1",
    ]
    done = cli(*args)
    assert done.code == 2
    assert f"failed: {missing.removesuffix('.git')}: MirrorError: git clone failed" in done.err
    assert fleet.git_server.hits[f"{ORG}/gone.git"] == 2  # tried, then retried after backoff
    text = cli("fleet", "report", "--store", store).out
    assert f"failed: {missing.removesuffix('.git')}" in text
    # The next run resumes the unfinished scan: docs is not scanned again.
    again = cli(*args)
    assert "1 done by the run this one resumed" in again.err


def test_the_store_on_postgresql_takes_concurrent_writers_and_reports_alike(
    fleet: Fleet, cluster: str, postgres: str, tmp_path: Path, cli: Any
) -> None:
    assert cli(*scan_args(fleet, cluster, postgres, tmp_path / "cache", "-q")).code == 1
    data = report(cli, postgres)
    assert key_labels(fleet, data) == expected_placement(fleet, SOURCES)
    sarif = json.loads(cli("fleet", "report", "--store", postgres, "--format", "sarif").out)
    runs = {r["originalUriBaseIds"]["%SRCROOT%"]["description"]["text"]: r for r in sarif["runs"]}
    assert {n.split("/")[-1] for n in runs} == {"web", "api"}  # one run per repository
    assert len(runs[f"{ORG}/web"]["results"]) == 3
    assert Store(postgres).version == 1


def test_github_listing_follows_link_pages_and_waits_out_the_primary_rate_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = GitHubServer(prefix="/api/v3", limit=2, reset_after=1.5).start()
    try:
        for index in range(5):
            server.add("someone", f"r{index}", f"http://127.0.0.1:9/r{index}.git")
        server.users.add("someone")
        monkeypatch.setenv("GITHUB_TOKEN", "ghp_test_token_not_a_secret")
        started = time.monotonic()
        repos = from_github(user="someone", base_url=server.base_url, per_page=2)
        assert [r.name for r in repos] == [f"someone/r{i}" for i in range(5)]
        assert time.monotonic() - started >= 1.0  # it waited for x-ratelimit-reset
        assert all(authorized for _, _, authorized in server.requests)
        paths = [path for _, path, _ in server.requests]
        assert all(path.startswith("/api/v3/users/someone") for path in paths)  # Enterprise
    finally:
        server.stop()


def test_the_scan_path_imports_none_of_the_fleet_dependencies(repo: Path) -> None:
    code = (
        "import sys; from keysentry.cli import main; main(['scan', '-q', sys.argv[1]]); "
        "main(['scan', '-q', '--history', sys.argv[1]]); "
        "print([m for m in ('dask', 'distributed', 'sqlalchemy', 'github', 'psycopg') "
        "if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code, str(repo)], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr


# -- PostgreSQL ----------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1, in a temp dir; as `nobody` when run as root
    (initdb refuses root)."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the fleet extra)")
    data_root = Path(tempfile.mkdtemp(prefix="keysentry-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "nobody", "--"]
        shutil.chown(data_root, "nobody")
    from stores import free_port

    port = free_port()
    data = data_root / "data"
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "HOME": str(data_root)}

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], env=env, check=True, capture_output=True, timeout=120)

    run(
        str(binaries / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    )
    options = f"-p {port} -k {data_root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-w",
        "-l",
        str(data_root / "log"),
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(data_root, ignore_errors=True)


@pytest.fixture
def postgres(postgres_server: str) -> Iterator[str]:
    """An empty database of the test's own on that server."""
    import psycopg

    name = f"fleet_{os.getpid()}_{int(time.monotonic() * 1000)}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield postgres_server.rsplit("/", 1)[0] + f"/{name}"


def test_without_a_scheduler_the_scan_runs_on_an_embedded_local_cluster(
    fleet: Fleet, tmp_path: Path, cli: Any
) -> None:
    listed = tmp_path / "repos.txt"
    listed.write_text(f"{fleet.repo_url('docs')}\n{fleet.repo_url('api')}\n")
    store = str(tmp_path / "fleet.db")
    done = cli(
        "fleet",
        "scan",
        "--repos",
        str(listed),
        "--store",
        store,
        "--workers",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert done.code == 1, done.err
    assert "2 repositories scanned" in done.err
    assert Store(store).counts()["occurrences"] == 2
