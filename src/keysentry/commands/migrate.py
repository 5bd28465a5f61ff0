"""`keysentry migrate plan | apply | resume | rollback | copy`.

PATH is the migrated directory, whatever the working directory: plan paths are relative to
it, its journal is in PATH/.keysentry/migrate, and its configuration is the keysentry.toml or
pyproject.toml nearest PATH (PATH's, a parent's up to the repository root, else the working
directory's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from keysentry import loader
from keysentry.config import DEFAULT_MAX_FILE_SIZE, Config, load_config
from keysentry.errors import ConfigError, ExitCode
from keysentry.migrate.plan import Plan, make_plan
from keysentry.safety import escape_control, say, scrub

_DEFAULT_TEMPLATES = {
    "aws-sm": "aws-sm://{env}/openai#{name}",
    "vault": "vault://secret/{env}/openai#{name}",
}


def _report(line: str) -> None:
    """One line on stdout: paths come from file names, which may hold line breaks."""
    print(escape_control(scrub(f"keysentry: {line}")))


def _config(root: str) -> Config:
    """The configuration nearest PATH: PATH's own, else its parents' up to the repository's
    root; else the working directory's."""
    here = Path.cwd().resolve()
    for directory in (Path(root).resolve(), *Path(root).resolve().parents):
        if directory == here:
            break
        own = load_config(directory=directory)
        if own.path is not None:
            return own
        if (directory / ".git").exists():
            break
    return loader.current_config()


def _plan(root: str, env: str | None) -> Plan:
    return make_plan(root, _config(root), env, DEFAULT_MAX_FILE_SIZE)


def _shown(root: str, path: str) -> str:
    return path if root in (".", "./") else str(Path(root) / path)


def plan(root: str, env: str | None, fmt: str) -> int:
    result = _plan(root, env)
    if fmt == "json":
        shown = result.to_dict()
        for entry in shown["items"]:
            entry["path"] = scrub(_shown(root, entry["path"]))  # a name may hold a key
        print(json.dumps(shown, indent=2))
    else:
        for item in result.items:
            line = (
                f"{_shown(root, item.path)}:{item.line}: {item.secret.redacted} -> "
                f"{item.destination} ({item.env}/{item.name}; {item.action}: {item.note})"
            )
            print(
                escape_control(scrub(line))
            )  # a file name can neither start a line nor show a key
        for conflict in result.conflicts:
            print(escape_control(scrub(f"CONFLICT {conflict}")))
        if not result.items:
            print("keysentry: no key to move", file=sys.stderr)
    return int(ExitCode.FINDINGS if result.conflicts else ExitCode.CLEAN)


def apply(root: str, env: str | None, overwrite: bool) -> int:
    from keysentry.migrate.apply import apply as run_apply
    from keysentry.migrate.apply import refuse_if_interrupted

    refuse_if_interrupted(Path(root))
    result = _plan(root, env)
    if not result.items:
        print("keysentry: no key to move", file=sys.stderr)
        return int(ExitCode.CLEAN)
    run_apply(
        Path(root),
        result,
        env=env,
        overwrite=overwrite,
        report=_report,
        config_path=_config(root).path,
    )
    _after(root, result)
    return int(ExitCode.CLEAN)


def resume(root: str) -> int:
    from keysentry.migrate.apply import Journal
    from keysentry.migrate.apply import resume as run_resume

    journal = Journal.load(Path(root))
    env = journal.data.get("env") if journal else None
    result = _plan(root, env)
    run_resume(Path(root), result, report=_report, config_path=_config(root).path)
    _report("the interrupted migration is finished")
    return int(ExitCode.CLEAN)


def rollback(root: str) -> int:
    from keysentry.migrate.apply import rollback as run_rollback

    run_rollback(Path(root), _report)
    _report("sources restored; the stored secrets were left in their stores")
    return int(ExitCode.CLEAN)


def copy(
    source: str | None,
    destination: str | None,
    env: str | None,
    to_provider: str | None,
    overwrite: bool,
) -> int:
    from keysentry.migrate.apply import copy as run_copy

    if source and destination:
        run_copy(source, destination, overwrite=overwrite, report=_report)
        return int(ExitCode.CLEAN)
    if not (env and to_provider):
        raise ConfigError("copy takes --from REF --to REF, or --env ENV --to-provider P")
    config = loader.current_config()
    templates = config.raw.get("migrate", {}).get("templates", {})
    template = templates.get(to_provider) or _DEFAULT_TEMPLATES.get(to_provider)
    if not template:
        raise ConfigError(
            f"no destination template for {to_provider}: set [migrate.templates] "
            f'{to_provider} = "{to_provider}://...{{env}}...{{name}}"'
        )
    for name, ref in sorted(loader.environment(config, env).items()):
        run_copy(ref, template.format(env=env, name=name), overwrite=overwrite, report=_report)
    return int(ExitCode.CLEAN)


def _after(root: str, result: Plan) -> None:
    print(
        "keysentry: the keys are out of the files, but still in git history and in every clone: "
        "rotate them. To check:\n"
        "  keysentry scan --history          # where each key still is in history\n"
        "  keysentry scan --history --verify  # and whether it is live\n"
        "  keysentry revoke --project ... --key-id ...  # then revoke the old key",
        file=sys.stderr,
    )
    manual = [i for i in result.items if i.action == "manual"]
    for item in manual:
        say(f"keysentry: {_shown(root, item.path)}:{item.line}: left for you to edit: {item.note}")
