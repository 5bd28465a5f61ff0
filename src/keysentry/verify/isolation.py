"""Are the environments' keys isolated from one another?

- every environment's key is distinct (fingerprints);
- each environment's key is in its own project (needs the admin mapping; unknown without);
- the production key is in no other environment's store;
- no environment's key is in the repository's history (fingerprints of a history scan);
- key age and last use, from the admin listing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import NamedTuple

from keysentry.verify.spend import KeyRecord

PRODUCTION = ("production", "prod")


class Check(NamedTuple):
    check: str
    env: str
    ok: bool | None  # None: could not be decided
    detail: str
    warning: bool = False  # passed, but worth a look (shown as "warning")


def isolation(
    fingerprints: Mapping[str, str],  # env -> fingerprint of its key
    every_value: Mapping[str, set[str]],  # env -> fingerprints of every name it holds
    records: Mapping[str, list[KeyRecord]] | None,  # env -> admin listing matches
    history: set[str] | None,  # fingerprints in the repository's history; None: not checked
) -> list[Check]:
    checks = []
    for env, print_ in sorted(fingerprints.items()):
        shared = sorted(e for e, p in fingerprints.items() if p == print_ and e != env)
        checks.append(
            Check(
                "distinct key",
                env,
                not shared,
                f"same key as {', '.join(shared)}" if shared else "its own key",
            )
        )
        if records is None:
            checks.append(Check("own project", env, None, "needs an admin key"))
        else:
            project = _project(records.get(env, []))
            if project is None:
                checks.append(Check("own project", env, None, "key not mapped to one project"))
            else:
                others = sorted(
                    e for e in fingerprints if e != env and _project(records.get(e, [])) == project
                )
                checks.append(
                    Check(
                        "own project",
                        env,
                        not others,
                        f"{project} also holds {', '.join(others)}"
                        if others
                        else f"alone in {project}",
                    )
                )
            for record in records.get(env, [])[:1]:
                checks.append(Check("key age", env, True, _age(record)))
        if env in PRODUCTION:
            leaks = sorted(e for e, values in every_value.items() if e != env and print_ in values)
            checks.append(
                Check(
                    "production key elsewhere",
                    env,
                    not leaks,
                    f"also stored in {', '.join(leaks)}"
                    if leaks
                    else "in no other environment's store",
                )
            )
        if history is not None:  # None: not asked for, or not in a repository
            found = print_ in history
            checks.append(
                Check(
                    "not in git history",
                    env,
                    not found,
                    "found in this repository's history: rotate it"
                    if found
                    else "absent from this repository's history",
                )
            )
    return checks


def _project(records: list[KeyRecord]) -> str | None:
    projects = {r.project_id for r in records}
    return projects.pop() if len(projects) == 1 else None


def _age(record: KeyRecord) -> str:
    now = time.time()
    days = int((now - record.created_at) // 86400)
    used = (
        "never used"
        if record.last_used_at is None
        else f"last used {int((now - record.last_used_at) // 86400)} days ago"
    )
    return f"{record.id}, created {days} days ago, {used}"
