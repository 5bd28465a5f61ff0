"""`keysentry fleet scan | report`: many repositories on Dask into a datastore, and reports
from it. Everything heavy (dask, sqlalchemy, PyGithub) is imported here, when a fleet command
runs: never on the scan path. A missing `fleet` extra is a one-line hint, not a traceback."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from keysentry.errors import ConfigError, ExitCode, InputError
from keysentry.safety import say

DEFAULT_STORE = "keysentry-fleet.db"


def _need_extra() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"keysentry fleet needs the fleet extra ({exc.name} is missing): "
            "pip install 'keysentry[fleet]'"
        ) from None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keysentry" / "fleet"


def scan(options: dict[str, Any]) -> int:
    """List the repositories, scan them on the cluster, say what happened; the exit code:
    2 when any repository failed (the scan is incomplete), 3 a key found is live, 1 keys
    found, 0 none."""
    _need_extra()
    from keysentry.config import parse_size
    from keysentry.fleet import job

    repos, source = _repositories(options)
    if not repos:
        raise InputError(f"{source}: no repository to scan")
    run_options = job.Options(
        store_url=options["store"],
        cache_dir=options["cache_dir"] or default_cache_dir(),
        scheduler=options["scheduler"],
        workers=options["workers"],
        verify=options["verify"],
        openai_base_url=options["openai_base_url"] or os.environ.get("OPENAI_BASE_URL"),
        retries=options["retries"],
        fresh=options["fresh"],
        max_blob_size=parse_size(options["max_file_size"], "--max-file-size"),
        progress=not options["quiet"],
    )
    outcome = job.run(repos, source, run_options)
    resumed = f", {outcome.skipped} done by the run this one resumed" if outcome.skipped else ""
    say(
        f"keysentry: fleet scan {outcome.scan_id}: {outcome.scanned} repositories scanned"
        f"{resumed}, {outcome.blobs:,} objects ({outcome.bytes / 1e6:,.1f} MB) read, "
        f"{outcome.findings} key findings, {outcome.live} live; store {_shown_store(options)}"
    )
    for name, reason in outcome.failed:
        say(f"keysentry: failed: {name}: {reason}")
    if outcome.failed:
        count = len(outcome.failed)
        say(
            f"keysentry: error: {count} repositories could not be scanned: the fleet scan is "
            "incomplete (a rerun retries them)"
        )
        return int(ExitCode.ERROR)
    if outcome.live:
        return int(ExitCode.LIVE)
    return int(ExitCode.FINDINGS if outcome.findings else ExitCode.CLEAN)


def _repositories(options: dict[str, Any]) -> tuple[list[Any], str]:
    from keysentry.fleet import listing

    chosen = [n for n in ("repos", "github_org", "github_user") if options[n]]
    if len(chosen) != 1:
        raise InputError("name the repositories: one of --repos FILE, --github-org, --github-user")
    if options["repos"]:
        path = Path(options["repos"])
        return listing.from_file(path), f"file:{path.resolve()}"
    org, user = options["github_org"], options["github_user"]
    repos = listing.from_github(
        org=org,
        user=user,
        base_url=options["github_url"],
        forks=options["forks"],
        archived=options["archived"],
    )
    api = options["github_url"] or listing.GITHUB_API
    return repos, f"github:{api}:{'org' if org else 'user'}:{org or user}"


def _shown_store(options: dict[str, Any]) -> str:
    from keysentry.fleet.listing import without_credentials

    return without_credentials(str(options["store"]))


def report(store_url: str, fmt: str, output: Path | None, since: str | None) -> int:
    """Render the store; exit 3 when it holds a live key, 1 any key, 0 none."""
    _need_extra()
    from keysentry.atomic import write_atomically
    from keysentry.fleet import report as fleet_report
    from keysentry.fleet.store import Store

    if "://" not in store_url and not Path(store_url).exists():
        raise InputError(f"{store_url}: no fleet datastore there (run keysentry fleet scan)")
    store = Store(store_url)
    try:
        data = fleet_report.gather(store, fleet_report.parse_since(since))
    finally:
        store.close()
    text = fleet_report.render(data, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomically(output, text.encode("utf-8"))
    if any(k["verdict"] in fleet_report.LIVE for k in data["keys"]):
        return int(ExitCode.LIVE)
    return int(ExitCode.FINDINGS if data["keys"] else ExitCode.CLEAN)
