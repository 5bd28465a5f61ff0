"""`keysentry limit show | set | clear`: the hard spend limit of an environment's project.

The environment's key (read from its store) is placed in its project by the admin listing;
the limit is that project's, so every key of the project shares it. `set` takes dollars
(`--usd 100`, `--usd 12.50`) and sends cents; it and `clear` show what they will change and
ask first (`--yes` for scripts; no terminal and no `--yes`: refused). `set` reads the limit
back.
"""

from __future__ import annotations

import sys
from typing import Any

from keysentry import loader
from keysentry.commands.rotate import report
from keysentry.errors import ConfigError, ExitCode, InputError, KeysentryError
from keysentry.verify.limits import Limit, cents, clear_limit, get_limit, set_limit


def _admin(base_url: str | None) -> Any:
    from keysentry.commands.verify import admin_client, settings

    admin = admin_client(settings(base_url))
    if admin is None:
        raise ConfigError("spend limits need an admin key: [verify].admin_key or OPENAI_ADMIN_KEY")
    return admin


def project_of(admin: Any, env: str, name: str = loader.DEFAULT_NAME) -> str:
    """The project of the environment's key, from the admin listing."""
    from keysentry.verify.spend import KeyMap

    loader.environment(loader.current_config(), env)  # an unknown one is an error
    loader.refresh(name, env=env)
    secret = loader.load_key(name, env=env)
    matches = KeyMap(admin).match(secret)
    projects = {m.project_id for m in matches if m.project_id}
    if len(projects) != 1:
        what = "matches no key" if not matches else f"matches keys in {len(projects)} projects"
        raise KeysentryError(
            f"{env}'s key ({secret.redacted}): the admin listing {what}, so "
            "its project cannot be told"
        )
    return projects.pop()


def _shown(limit: Limit | None) -> str:
    return str(limit) if limit is not None else "no hard spend limit"


def show(envs: list[str], base_url: str | None) -> int:
    admin = _admin(base_url)
    chosen = envs or sorted(loader.configured_environments(loader.current_config()))
    for env in chosen:
        project = project_of(admin, env)
        report(f"limit {env}: {project}: {_shown(get_limit(admin, project))}")
    return int(ExitCode.CLEAN)


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        raise InputError("refusing to change a spend limit without confirmation: pass --yes")
    return input(f"{question} Type 'yes' to confirm: ").strip() == "yes"


def set_(env: str, usd: str, yes: bool, base_url: str | None) -> int:
    amount = cents(usd)
    admin = _admin(base_url)
    project = project_of(admin, env)
    before = get_limit(admin, project)
    report(f"limit {env}: {project}: {_shown(before)} -> ${amount / 100:,.2f} USD/month")
    if not _confirm(f"Set the hard spend limit of {project} ({env})? Requests over it fail.", yes):
        report("not changed")
        return int(ExitCode.FINDINGS)
    report(f"limit {env}: {project}: set to {set_limit(admin, project, amount)}")
    return int(ExitCode.CLEAN)


def clear(env: str, yes: bool, base_url: str | None) -> int:
    admin = _admin(base_url)
    project = project_of(admin, env)
    before = get_limit(admin, project)
    if before is None:
        report(f"limit {env}: {project}: no hard spend limit to clear")
        return int(ExitCode.CLEAN)
    report(f"limit {env}: {project}: {before} -> none")
    if not _confirm(
        f"Remove the hard spend limit of {project} ({env})? Spend is then uncapped.", yes
    ):
        report("not changed")
        return int(ExitCode.FINDINGS)
    clear_limit(admin, project)
    report(f"limit {env}: {project}: cleared")
    return int(ExitCode.CLEAN)
