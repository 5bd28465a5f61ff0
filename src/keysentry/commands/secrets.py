"""`keysentry get`, `keysentry run` and `keysentry env check`: the loader from the shell."""

from __future__ import annotations

import os
import subprocess
import sys

from keysentry import loader
from keysentry.errors import ExitCode, ProviderError
from keysentry.safety import escape_control


def get(name: str, env: str | None, reveal: bool) -> int:
    fetched = loader.fetch(name, env=env)
    if reveal:
        print(fetched.secret.reveal())
    else:
        print(f"{name} = {fetched.secret.redacted}")
    print(f"keysentry: {name} from {fetched.source}", file=sys.stderr)
    return int(ExitCode.CLEAN)


def run(command: list[str], env: str | None, override: bool) -> int:
    """Run `command` with the environment's names set from their stores; the child's exit
    code is ours. Variables already set win, unless `override`."""
    if not command:
        print("keysentry: error: give the command to run after --", file=sys.stderr)
        return int(ExitCode.ERROR)
    child = dict(os.environ)
    for name in _names(env):
        if name in child and not override:
            continue
        child[name] = loader.load_key(name, env=env).reveal()
    try:
        return subprocess.run(command, env=child, check=False).returncode
    except FileNotFoundError:
        print(f"keysentry: error: {command[0]}: command not found", file=sys.stderr)
        return 127


def check(envs: list[str]) -> int:
    """Resolve every name of every environment (all of them by default) and say, redacted,
    which resolve; exit 1 if any does not."""
    config = loader.current_config()
    failed = 0
    for env in envs or sorted(loader.environments(config)):
        for name in sorted(loader.environment(config, env)):
            try:
                fetched = loader.fetch(name, env=env)
            except ProviderError as exc:
                failed += 1
                print(f"{env}\t{name}\tFAILED\t{escape_control(str(exc))}")  # store's words
            else:
                print(f"{env}\t{name}\tok\t{fetched.secret.redacted}\t{fetched.source}")
    return int(ExitCode.FINDINGS if failed else ExitCode.CLEAN)


def _names(env: str | None) -> list[str]:
    env = env or os.environ.get("KEYSENTRY_ENV") or None
    if env is None:
        return [loader.DEFAULT_NAME]
    return sorted(loader.environment(loader.current_config(), env))
