"""`keysentry rotate`: an environment's key replaced with zero downtime.

    rotate --env ENV [--until-unused] [--grace S] [--dry-run] [--yes]
    rotate --due [--no-history]          every environment over its maximum key age, or whose
                                         key is in this repository's history (leaked)
    rotate --resume [--env ENV]          finish an interrupted rotation
    rotate --rollback [--env ENV]        undo it (before the old key is deleted)

Each step is printed, redacted. Without --yes the plan is shown and confirmed on a terminal
(no terminal and no --yes: refused). Exit 0 when done (or nothing is due), 1 when the
confirmation is declined, 2 on any error (the journal then says where it stopped).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

from keysentry import loader
from keysentry.config import Config
from keysentry.errors import ConfigError, ExitCode, InputError, KeysentryError
from keysentry.providers.base import parse_ref
from keysentry.rotate import plan as plans
from keysentry.rotate import policies
from keysentry.rotate.journal import RotationJournal, interrupted, journal_path, load
from keysentry.rotate.steps import Rotation, advance, rollback
from keysentry.safety import escape_control, scrub
from keysentry.scanner.findings import fingerprint


def report(line: str) -> None:
    """One line on stdout, redacted and on one line (names come from the config and the API)."""
    print(escape_control(scrub(f"keysentry: {line}")), flush=True)


class Options(NamedTuple):
    env: str | None = None
    name: str = loader.DEFAULT_NAME
    due: bool = False
    resume: bool = False
    rollback: bool = False
    dry_run: bool = False
    yes: bool = False
    until_unused: bool = False
    grace: float | None = None
    base_url: str | None = None
    history: bool = True


def _base(config: Config) -> Path:
    return config.path.parent if config.path is not None else Path.cwd()


def _admin(base_url: str | None) -> tuple[Any, str | None]:
    from keysentry.commands.verify import admin_client, settings

    config = settings(base_url)
    admin = admin_client(config)
    if admin is None:
        raise ConfigError("rotating needs an admin key: [verify].admin_key or OPENAI_ADMIN_KEY")
    return admin, config.base_url


def run(options: Options) -> int:
    modes = sum((options.due, options.resume, options.rollback))
    if modes > 1:
        raise InputError("choose one of --due, --resume and --rollback")
    if modes == 0 and not options.env:
        raise InputError("name the environment (--env ENV), or pass --due")
    if options.due and options.env:
        raise InputError("--due rotates every due environment: leave out --env")
    config = loader.current_config()
    admin, base_url = _admin(options.base_url)
    if options.resume or options.rollback:
        return _continue(config, admin, base_url, options)
    settings = policies.settings(config, options.grace)
    if options.due:
        chosen = _due(config, admin, options)
        if not chosen:
            report("no environment is due for rotation")
            return int(ExitCode.CLEAN)
    else:
        assert options.env is not None
        chosen = [options.env]
    journals = []
    for env in chosen:
        journals.append(_plan(config, env, options, admin, settings))
    if options.dry_run:
        report("dry run: nothing was changed")
        return int(ExitCode.CLEAN)
    if not options.yes and not _confirmed(chosen):
        report("not rotated")
        return int(ExitCode.FINDINGS)
    for found in journals:
        found.record("planned")
        advance(Rotation(found, admin, report, base_url=base_url))
    return int(ExitCode.CLEAN)


def _plan(
    config: Config, env: str, options: Options, admin: Any, settings: policies.Settings
) -> RotationJournal:
    """The environment's plan, printed; its journal, not yet written."""
    from keysentry.providers import provider_for
    from keysentry.verify.spend import KeyMap

    path = journal_path(_base(config), env)
    if RotationJournal.read(path) is not None:
        raise InputError(
            f"an interrupted rotation of {env} is in {path}: run keysentry rotate "
            f"--resume --env {env} or --rollback --env {env}"
        )
    chosen = plans.target(config, env, options.name)
    fetched = provider_for(chosen.ref.scheme).get(chosen.ref)
    sharing = _sharing(config, env, options.name, fingerprint(fetched.secret.reveal()))
    if sharing:
        raise InputError(
            f"{', '.join(sharing)} also hold{'s' if len(sharing) == 1 else ''} the key of {env}: "
            "deleting it would leave them without a live key; give each environment its own "
            "key first"
        )
    data = plans.make(
        chosen, fetched.secret, fetched.version, KeyMap(admin), settings, options.until_unused
    )
    report(f"rotate {env}: plan")
    for number, line in enumerate(plans.describe(data), 1):
        report(f"  {number}. {line}")
    return RotationJournal(path, data)


def _sharing(config: Config, env: str, name: str, print_: str) -> list[str]:
    """The other environments whose store holds the same key (the old key's deletion would
    take them down too)."""
    from keysentry.providers import provider_for

    found = []
    for other, names in sorted(loader.environments(config).items()):
        if other == env or name not in names:
            continue
        try:
            ref = plans.located(config, parse_ref(names[name]))
            if fingerprint(provider_for(ref.scheme).get(ref).secret.reveal()) == print_:
                found.append(other)
        except KeysentryError:
            continue  # a store that cannot be read holds nothing we know of
    return found


def _confirmed(envs: list[str]) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        raise InputError("refusing to rotate without confirmation: pass --yes")
    answer = input(f"Rotate the key of {', '.join(envs)}? Type 'rotate' to confirm: ")
    return answer.strip() == "rotate"


def _continue(config: Config, admin: Any, base_url: str | None, options: Options) -> int:
    base = _base(config)
    envs = [options.env] if options.env else interrupted(base)
    if len(envs) != 1:
        what = "none" if not envs else ", ".join(envs)
        raise InputError(f"name the rotation to continue with --env (interrupted: {what})")
    found = load(base, envs[0])
    if found is None:
        raise InputError(f"no interrupted rotation of {envs[0]} in {journal_path(base, envs[0])}")
    _refuse_a_foreign_journal(config, found)
    rotation = Rotation(found, admin, report, base_url=base_url)
    if options.rollback:
        rollback(rotation)
    else:
        last = found.data["steps"][-1] if found.data["steps"] else "nothing"
        report(f"rotate {envs[0]}: resuming after {last}")
        advance(rotation)
    return int(ExitCode.CLEAN)


def _refuse_a_foreign_journal(config: Config, found: RotationJournal) -> None:
    """A journal is text anyone could have put in the tree (a cloned repository): it must be
    this config's rotation of this environment, or resuming it could delete another key."""
    data = found.data
    try:
        env, name = str(data["env"]), str(data["name"])
        configured = plans.ref_data(plans.target(config, env, name).ref)
        same = configured == data["ref"] and isinstance(data.get("old"), dict)
    except (KeyError, TypeError):
        same = False
    if not same:
        raise InputError(
            f"{found.path} is not a rotation of this config's environment (its reference "
            "differs): not resumed or rolled back; remove it if you did not start it"
        )


def _due(config: Config, admin: Any, options: Options) -> list[str]:
    """The environments whose key is over its maximum age, or in this repository's history
    (leaked); each one's reason printed."""
    from keysentry.providers import provider_for
    from keysentry.scanner.git.scans import history_fingerprints
    from keysentry.verify.spend import KeyMap

    keymap = KeyMap(admin)
    leaked = history_fingerprints() if options.history else None
    due = []
    for env in sorted(loader.configured_environments(config)):
        if options.name not in loader.environment(config, env):
            continue
        try:
            chosen = plans.target(config, env, options.name)
            secret = provider_for(chosen.ref.scheme).get(chosen.ref).secret
        except KeysentryError as exc:
            report(f"rotate {env}: skipped: {exc}")
            continue
        rule = policies.policy(config, env)
        matches = keymap.match(secret)
        reasons = []
        if leaked is not None and fingerprint(secret.reveal()) in leaked:
            reasons.append("its key is in this repository's history (leaked)")
        if len(matches) == 1 and policies.overdue(matches[0], rule):
            reasons.append(
                f"its key is {policies.age_days(matches[0]):.0f} days old, over the "
                f"maximum of {rule.max_age_days:.0f}"
            )
        if reasons:
            report(f"rotate {env}: due: {'; '.join(reasons)}")
            due.append(env)
        elif len(matches) == 1:
            limit = f"maximum {rule.max_age_days:.0f}" if rule.max_age_days else "no maximum"
            report(f"rotate {env}: not due ({policies.age_days(matches[0]):.0f} days old, {limit})")
        else:
            report(
                f"rotate {env}: not due by history; its age is unknown (the admin listing "
                f"matches {len(matches)} keys)"
            )
    return due
