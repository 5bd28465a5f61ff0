"""The fleet scan on Dask: one task per repository, results written from the workers.

A task mirrors its repository into its machine's cache directory (clone once, fetch after),
runs the history scan with its clean-blob cache there (so a rerun reads only what the fetch
brought; the workers of one machine share the directory, a lock per mirror between them),
claims and verifies the keys nobody verified yet, and writes the repository's whole result
in one transaction. What travels back to the client is a summary
(counts, never a key). Tasks prefer the worker that scanned their repository last (a stable
hash of the URL over the workers' names), so that on a cluster of many machines its mirror
and caches are at hand; any worker may take one when that worker is busy or gone (it then
clones once on its own machine).

Failures: Dask reschedules a task whose worker died; a task that raised (or whose workers kept
dying) is submitted again by the client, after a backoff the task itself sleeps, up to
`retries` times; then the repository is recorded as failed with its reason, and the scan is
incomplete (exit 2). A scan stays `running` until every repository is done (`incomplete` if
some failed), and the next run over the same repositories resumes it: what it finished is
skipped, the rest (failed ones included) scanned.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from keysentry.fleet.listing import Repository, without_credentials
from keysentry.fleet.store import Occurrence, RepoResult, Store
from keysentry.safety import escape_control, scrub

_STORES: dict[str, Store] = {}  # one engine per worker process and store


class Task(NamedTuple):
    repo: Repository
    scan_id: int
    store_url: str
    cache_dir: str
    verify: bool
    openai_base_url: str | None
    max_blob_size: int
    attempt: int = 1


class Options(NamedTuple):
    store_url: str
    cache_dir: Path
    scheduler: str | None = None
    workers: int | None = None
    verify: bool = False
    openai_base_url: str | None = None
    retries: int = 3
    fresh: bool = False
    max_blob_size: int = 50 << 20
    progress: bool = True


class Outcome(NamedTuple):
    scan_id: int
    scanned: int
    skipped: int  # finished by the interrupted run this one resumed
    failed: list[tuple[str, str]]  # (repository, reason)
    findings: int  # distinct keys in the repositories this run scanned
    live: int  # of those, live by their stored verdict (whoever verified them)
    blobs: int
    bytes: int


def backoff(attempt: int) -> float:
    """Seconds a retry waits: 0 for the first attempt, then 1, 2, 4 ... up to a minute."""
    return 0.0 if attempt <= 1 else float(min(60, 2 ** (attempt - 2)))


def store_for(url: str) -> Store:
    if url not in _STORES:
        _STORES[url] = Store(url)
    return _STORES[url]


def scan_repository(task: Task) -> dict[str, Any]:
    """One repository, start to finish, on a Dask worker; returns counts only."""
    time.sleep(backoff(task.attempt))
    started = time.perf_counter()
    from keysentry.fleet.mirror import update_mirror
    from keysentry.scanner.git.repo import open_repo
    from keysentry.scanner.git.scans import scan_history
    from keysentry.scanner.pipeline import Suppression

    token = os.environ.get("GITHUB_TOKEN") if task.repo.github else None
    cache = Path(task.cache_dir) / _host_name()
    path = update_mirror(task.repo.url, cache, token)
    repo = open_repo(str(path))
    # No inline allow: in a fleet scan the repository's own authors do not get to hide a key.
    result = scan_history(
        repo,
        Suppression(inline_allow=False),
        all_objects=False,
        max_blob_size=task.max_blob_size,
        use_cache=True,
        progress=False,
    )
    if result.unreadable:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in result.skipped if s.unreadable)
        raise IncompleteRepository(f"incomplete scan: {reasons[:300]}")
    store = store_for(task.store_url)
    live = 0
    if task.verify and result.findings:
        live = _verify_new_keys(store, task, result.findings)
    occurrences = tuple(_occurrence(f) for f in result.findings)
    store.record(
        task.scan_id,
        RepoResult(
            url=without_credentials(task.repo.url),
            name=_shown(task.repo.name),
            owner=_shown(task.repo.owner),
            fork=task.repo.fork,
            archived=task.repo.archived,
            blobs=result.blobs,
            bytes=result.bytes,
            seconds=time.perf_counter() - started,
            attempts=task.attempt,
            occurrences=occurrences,
        ),
    )
    keys = {o.fingerprint for o in occurrences}
    return {"blobs": result.blobs, "bytes": result.bytes, "findings": len(keys), "live": live}


class IncompleteRepository(Exception):
    """Some objects of the repository could not be read or searched: never a clean result."""


def _host_name() -> str:
    """This machine's name, made a safe directory name: its workers share the mirrors under
    it (a lock per mirror keeps them from fetching one at once), so a task that another
    worker of the same machine took still finds its repository's mirror and caches."""
    name = socket.gethostname()
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "host"


def _verify_new_keys(store: Store, task: Task, findings: list[Any]) -> int:
    """Verify the keys no one has verified: each key is claimed in the store first, so that
    across the fleet a key is verified once, and never by two workers at a time. Returns how
    many of the keys this task verified are live."""
    from keysentry.commands.verify import verify_findings
    from keysentry.scanner.pipeline import ScanResult

    by_key = {f.fingerprint: f for f in findings}
    store.add_keys((f.fingerprint, f.kind.value, f.redacted) for f in by_key.values())
    token = uuid.uuid4().hex
    claimed = store.claim(by_key, token, task.scan_id)
    if not claimed:
        return 0
    try:
        batch = ScanResult()
        batch.findings = [by_key[f] for f in claimed]
        verified = verify_findings(batch, task.openai_base_url)
        verdicts = {f.fingerprint: dict(f.provenance["verification"]) for f in batch.findings}
        store.set_verdicts(verdicts, token, task.scan_id)
    except BaseException:
        store.release(token)
        raise
    return verified.live


def _occurrence(finding: Any) -> Occurrence:
    """A finding as the store keeps it: fingerprint, redacted form and timeline; text that
    came from the repository (paths, author names) scrubbed and made one line."""
    timeline = finding.provenance.get("git", {})
    introduced = timeline.get("introduced") or {}
    removed = timeline.get("removed") or {}
    return Occurrence(
        fingerprint=finding.fingerprint,
        kind=finding.kind.value,
        redacted=finding.redacted,
        path=_shown(finding.path),
        line=int(introduced.get("line") or finding.line),
        blob=timeline.get("blob"),
        introduced_commit=introduced.get("commit"),
        introduced_author=_shown(introduced.get("author", "")) or None,
        introduced_date=introduced.get("date"),
        removed_commit=removed.get("commit"),
        removed_date=removed.get("date"),
        at_head=timeline.get("at_head"),
        refs=tuple(_shown(r) for r in timeline.get("refs", ())),
        commits=int(timeline.get("commits") or 0),
    )


def _shown(text: str) -> str:
    return escape_control(scrub(text))


# -- the client side ---------------------------------------------------------------------------


def connect(scheduler: str | None, workers: int | None) -> Any:
    """A Dask client: to the scheduler named (option, else Dask's config, which reads
    DASK_SCHEDULER_ADDRESS), else to an embedded LocalCluster of one process per core."""
    import dask

    dist = _distributed()
    address = (
        scheduler
        or os.environ.get("DASK_SCHEDULER_ADDRESS")  # read now: Dask reads it only on import
        or dask.config.get("scheduler-address", None)
    )
    if address:
        return dist.Client(address, timeout="30s")
    cluster = dist.LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # any free port: never a clash with another cluster
        silence_logs=40,  # logging.ERROR
    )
    return dist.Client(cluster)


def _distributed() -> Any:
    """dask.distributed, untyped: its API is used through a few calls."""
    import importlib

    return importlib.import_module("distributed")


def run(
    repos: list[Repository], source: str, options: Options, client: Any | None = None
) -> Outcome:
    """Scan every repository on the cluster into the store; resume an interrupted scan."""
    store = Store(options.store_url)
    by_url = {without_credentials(r.url): r for r in repos}
    scan_id, done = store.open_scan(source, sorted(by_url), options.fresh)
    todo = [r for url, r in by_url.items() if url not in done]
    own_client = client is None
    client = client or connect(options.scheduler, options.workers)
    progress = Progress(len(by_url), len(done), options.progress)
    failed: list[tuple[str, str]] = []
    totals = {"blobs": 0, "bytes": 0}
    try:
        submit = _submitter(client, scan_id, options)
        pending = {submit(repo, 1): (repo, 1) for repo in todo}
        completed = _distributed().as_completed(list(pending))
        for future in completed:
            repo, attempt = pending.pop(future)
            if future.status == "finished":
                summary = future.result()
                totals["blobs"] += summary["blobs"]
                totals["bytes"] += summary["bytes"]
                progress.update(summary)
                continue
            reason = _failure(future)
            if attempt <= options.retries:
                retry = submit(repo, attempt + 1)
                pending[retry] = (repo, attempt + 1)
                completed.add(retry)
                continue
            failed.append((_shown(repo.name), reason))
            store.record_failure(scan_id, _failed_result(repo), reason, attempt)
            progress.update(None)
        complete = not failed
        store.finish_scan(scan_id, complete)
    finally:
        progress.close()
        if own_client:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    keys, live = store.scan_keys(scan_id)
    return Outcome(
        scan_id=scan_id,
        scanned=len(todo) - len(failed),
        skipped=len(done),
        failed=failed,
        findings=keys,
        live=live,
        blobs=totals["blobs"],
        bytes=totals["bytes"],
    )


def _submitter(client: Any, scan_id: int, options: Options) -> Callable[[Repository, int], Any]:
    """submit(repo, attempt): the repository's task, preferring its usual worker."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    by_name = sorted((str(w.get("name")), address) for address, w in workers.items())

    def submit(repo: Repository, attempt: int) -> Any:
        task = Task(
            repo,
            scan_id,
            options.store_url,
            str(options.cache_dir),
            options.verify,
            options.openai_base_url,
            options.max_blob_size,
            attempt,
        )
        digest = hashlib.sha256(repo.url.encode("utf-8", "surrogateescape")).hexdigest()
        preferred = [by_name[int(digest, 16) % len(by_name)][1]] if by_name else None
        return client.submit(
            scan_repository,
            task,
            key=f"keysentry-scan-{digest[:16]}-{attempt}-{uuid.uuid4().hex[:8]}",
            pure=False,
            workers=preferred,
            allow_other_workers=True,
        )

    return submit


def _failure(future: Any) -> str:
    """Why a task failed, as one scrubbed line."""
    try:
        exc = future.exception()
    except Exception as other:  # cancelled, or the scheduler lost it
        exc = other
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return escape_control(scrub(text))[:300]


def _failed_result(repo: Repository) -> RepoResult:
    return RepoResult(
        url=without_credentials(repo.url),
        name=_shown(repo.name),
        owner=_shown(repo.owner),
        fork=repo.fork,
        archived=repo.archived,
        blobs=0,
        bytes=0,
        seconds=0.0,
        attempts=0,
        occurrences=(),
    )


class Progress:
    """`repositories, MB, findings` on stderr: rewritten in place on a terminal, else a line
    every few seconds and one at the end."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done = total, done
        self.bytes = self.findings = self.failed = 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.shown = 0.0

    def update(self, summary: dict[str, Any] | None) -> None:
        self.done += 1
        if summary is None:
            self.failed += 1
        else:
            self.bytes += summary["bytes"]
            self.findings += summary["findings"]
        now = time.monotonic()
        if self.enabled and (self.tty or now - self.shown >= 5 or self.done == self.total):
            self.shown = now
            self._write()

    def line(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"keysentry: fleet: {self.done}/{self.total} repositories, "
            f"{self.bytes / 1e6:,.1f} MB read, {self.findings} key findings{failed}"
        )

    def _write(self) -> None:
        end = "" if self.tty else "\n"
        start = "\r\033[K" if self.tty else ""
        sys.stderr.write(f"{start}{self.line()}{end}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
