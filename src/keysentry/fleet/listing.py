"""Which repositories a fleet scan covers: a file of clone URLs or paths, or a GitHub
organisation or user listed through PyGithub.

PyGithub over githubkit: it imports in about 0.2 s on top of `requests`, which the test
extra already has, is maintained by a large community (2.x, typed), follows the `Link`
header's `next` page, and its `GithubRetry` honours both the primary rate limit
(`x-ratelimit-remaining: 0` waits for `x-ratelimit-reset`) and the secondary one (a 403 whose
`Retry-After` says how long). githubkit 0.16.1 did not even import here: its pinned cache
library (hishel) had moved on under it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from keysentry.errors import ConfigError, InputError

GITHUB_API = "https://api.github.com"


class Repository(NamedTuple):
    """One repository to scan: `name` is how reports show it (owner/name for GitHub, the URL
    without credentials otherwise); `url` is what git clones."""

    name: str
    url: str
    owner: str = ""
    fork: bool = False
    archived: bool = False
    github: bool = False  # listed by the GitHub API: its clone may carry GITHUB_TOKEN


def without_credentials(url: str) -> str:
    """`url` with any user:password removed: what the store and reports may show."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def from_file(path: Path) -> list[Repository]:
    """One clone URL or local path per line; blank lines and `#` comments are skipped.
    Relative paths are taken from the file's directory."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the repository list: {exc}") from None
    repos: dict[str, Repository] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\0" in line or line.startswith("-"):
            raise InputError(f"{path}:{number}: not a clone URL or path")
        if "://" in line or line.startswith("git@"):
            url = line
            name = without_credentials(line).removesuffix("/").removesuffix(".git")
        else:
            url = str((path.parent / line).resolve())
            name = url
        repos.setdefault(url, Repository(name, url))
    return list(repos.values())


def from_github(
    *,
    org: str | None = None,
    user: str | None = None,
    base_url: str | None = None,
    forks: bool = False,
    archived: bool = False,
    per_page: int = 100,
) -> list[Repository]:
    """Every repository of a GitHub organisation or user, through the REST API, forks and
    archived ones only when asked. The token comes from GITHUB_TOKEN (none: public only)."""
    import logging

    from github import Auth, Github, GithubException, GithubRetry

    # Its retries log at INFO through whatever handler the process has (Dask installs some):
    # noise on the CLI's stderr, so only its warnings pass.
    logging.getLogger("github").setLevel(logging.WARNING)
    token = os.environ.get("GITHUB_TOKEN") or None
    client = Github(
        auth=Auth.Token(token) if token else None,
        base_url=(base_url or os.environ.get("GITHUB_API_URL") or GITHUB_API).rstrip("/"),
        per_page=per_page,
        retry=GithubRetry(total=8, backoff_factor=0.5),
        timeout=30,
        lazy=True,  # no GET of the organisation itself: only its repository pages
    )
    try:
        if org:
            pages: Any = client.get_organization(org).get_repos(type="all")
        elif user:
            pages = client.get_user(user).get_repos(type="owner")
        else:
            raise ConfigError("name a GitHub organisation or user")
        repos = [_repository(r) for r in pages]
    except GithubException as exc:
        who = f"organisation {org}" if org else f"user {user}"
        raise InputError(f"GitHub: cannot list the {who}: HTTP {exc.status}") from None
    finally:
        client.close()
    return [r for r in repos if (forks or not r.fork) and (archived or not r.archived)]


def _repository(repo: Any) -> Repository:
    return Repository(
        name=repo.full_name,
        url=repo.clone_url,
        owner=repo.owner.login,
        fork=bool(repo.fork),
        archived=bool(repo.archived),
        github=True,
    )
