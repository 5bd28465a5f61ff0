"""A bare mirror of each repository in a worker's cache directory: cloned once, fetched after.

The mirror's git dir holds the history scan's caches (`keysentry/clean-blobs`, the last
result), so a rerun on the same worker reads only the objects the fetch brought. git runs
with hooks pointed nowhere, no credential helper and no terminal prompt; a GitHub token (for
private repositories) reaches git through GIT_CONFIG_* variables, never its command line,
where any user of the machine could read it.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from keysentry.errors import InputError
from keysentry.fleet.listing import without_credentials
from keysentry.safety import escape_control, scrub

_TIMEOUT = 3600.0


class MirrorError(InputError):
    """A clone or fetch failed: the repository is retried, then reported as failed."""


def mirror_path(cache_dir: Path, url: str) -> Path:
    """Where a repository's mirror lives: a readable slug plus a hash of the whole URL, so
    that two URLs never share a mirror and no URL can name a path outside the cache."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", url.rstrip("/").rsplit("/", 1)[-1])[-60:]
    digest = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return cache_dir / f"{slug.lstrip('.') or 'repo'}-{digest}.git"


def update_mirror(url: str, cache_dir: Path, token: str | None = None) -> Path:
    """Clone `url` as a bare mirror, or fetch into the one there is; returns its path. A lock
    file keeps two tasks on one machine from fetching the same mirror at once."""
    target = mirror_path(cache_dir, url)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "HEAD").exists():
            _git(["-C", str(target), "fetch", "--prune", "--quiet", "origin"], url, token)
        else:
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)  # left by a worker killed mid-clone
            _git(["clone", "--mirror", "--quiet", "--", url, str(partial)], url, token)
            os.replace(partial, target)  # a half-done clone is never taken for a mirror
        _point_head(target, url)
    return target


def _point_head(mirror: Path, url: str) -> None:
    """Point the mirror's HEAD at a branch when the remote's names none that exists (a bare
    repository whose default branch was never pushed): the history scan starts from HEAD, and
    an unborn HEAD would read as an empty history."""
    head = ["-C", str(mirror), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"]
    if _git(head, url, None, check=False):
        return
    listing = ["for-each-ref", "--count=1", "--format=%(refname)", "refs/heads/"]
    branches = _output(["-C", str(mirror), *listing], url)
    if branches:
        _git(["-C", str(mirror), "symbolic-ref", "HEAD", branches], url, None)


def _output(args: list[str], url: str) -> str:
    done = _run(args, url, None)
    return done.stdout.decode("utf-8", "surrogateescape").strip() if done.returncode == 0 else ""


def _git(args: list[str], url: str, token: str | None, check: bool = True) -> bool:
    """Run git; a failure is a MirrorError with git's last line, or False without `check`."""
    done = _run(args, url, token)
    if done.returncode == 0:
        return True
    if not check:
        return False
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"]
    # git's message may quote the URL: never with the password a URL may carry.
    quoted = re.sub(r"//[^/@\s]+@", "//", lines[-1].removeprefix("fatal: "))
    reason = escape_control(scrub(quoted))[:200]
    verb = "fetch" if "fetch" in args else "clone" if "clone" in args else args[2]
    raise MirrorError(f"git {verb} failed: {reason}")


def _run(args: list[str], url: str, token: str | None) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    settings = {
        "core.hooksPath": os.devnull,
        "credential.helper": "",
        "transfer.fsckObjects": "false",
        "protocol.ext.allow": "never",
    }
    if token and url.startswith("https://"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        settings["http.extraHeader"] = f"Authorization: Basic {basic}"
    environment.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    environment["GIT_CONFIG_COUNT"] = str(len(settings))
    for index, (key, value) in enumerate(settings.items()):
        environment[f"GIT_CONFIG_KEY_{index}"] = key
        environment[f"GIT_CONFIG_VALUE_{index}"] = value
    try:
        return subprocess.run(
            ["git", *args],
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MirrorError(f"git {args[0]} of {without_credentials(url)}: {exc}") from None
