"""`keysentry get`, `keysentry run` and `keysentry env check`: the loader from the shell.

`run` is a small process supervisor, since in a container it is often PID 1 itself and
`docker stop` signals keysentry, not the application: SIGTERM, SIGINT, SIGHUP, SIGQUIT,
SIGUSR1 and SIGUSR2 sent to keysentry are passed on to the child, and keysentry waits for it
and exits with its status, 128+N when signal N killed it (as a shell reports it). SIGINT and
SIGQUIT typed on a terminal (Ctrl-C) already reach the child, which shares the terminal's
foreground process group with keysentry, so those are not sent a second time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from keysentry import loader
from keysentry.errors import ConfigError, ExitCode, ProviderError
from keysentry.safety import escape_control, say, scrub


def get(name: str, env: str | None, reveal: bool) -> int:
    fetched = loader.fetch(name, env=env)
    if reveal:
        print(fetched.secret.reveal())
    else:
        print(f"{_shown(name)} = {fetched.secret.redacted}")
    say(f"keysentry: {name} from {fetched.source}")
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
        return _supervise(command, child)
    except FileNotFoundError:
        say(f"keysentry: error: {command[0]}: command not found")
        return int(ExitCode.COMMAND_NOT_FOUND)
    except PermissionError:  # as a shell says: a file without execute permission, a directory
        say(f"keysentry: error: {command[0]}: cannot be executed (permission denied)")
        return int(ExitCode.COMMAND_NOT_EXECUTABLE)


_FORWARDED = tuple(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)
_TYPED_ON_A_TERMINAL = {getattr(signal, n) for n in ("SIGINT", "SIGQUIT") if hasattr(signal, n)}


def _supervise(command: list[str], environ: dict[str, str]) -> int:
    """Run `command`, pass on the signals keysentry receives, and return its exit status the
    way a shell reports it (128+N after signal N)."""
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum in _TYPED_ON_A_TERMINAL and _in_the_terminals_foreground():
            return  # the terminal sent it to the child as well
        if child is None:
            pending.append(signum)  # arrived while the child was being started
        elif child.returncode is None:
            child.send_signal(signum)

    # Handlers can only be installed from the main thread; elsewhere the caller owns signals.
    handling = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED} if handling else {}
    try:
        child = subprocess.Popen(command, env=environ)
        for signum in pending:
            child.send_signal(signum)
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - status if status < 0 else status


def _in_the_terminals_foreground() -> bool:
    """Whether keysentry (and so its child) is in the foreground process group of its
    terminal, where a typed Ctrl-C reaches every process of the group."""
    for descriptor in (0, 1, 2):
        try:
            return os.tcgetpgrp(descriptor) == os.getpgrp()
        except OSError:
            continue  # not a terminal
    return False


def check(envs: list[str]) -> int:
    """Resolve every name of every environment (all of them by default) and say, redacted,
    which resolve; exit 1 if any does not, 2 (a ConfigError) if there is nothing to resolve."""
    config = loader.current_config()
    failed = checked = 0
    envs = envs or sorted(loader.configured_environments(config))
    for env in envs:
        for name in sorted(loader.environment(config, env)):
            checked += 1
            try:
                fetched = loader.fetch(name, env=env)
            except ProviderError as exc:
                failed += 1
                fields = [env, name, "FAILED", str(exc)]  # the store's words
            else:
                fields = [env, name, "ok", fetched.secret.redacted, fetched.source]
            print("\t".join(_shown(field) for field in fields))
    if not checked:
        tables = ", ".join(f"[environments.{env}]" for env in envs)
        raise ConfigError(
            f"{tables} names no secret, so there is nothing to check: add a line "
            'such as OPENAI_API_KEY = "env://OPENAI_API_KEY"'
        )
    return int(ExitCode.FINDINGS if failed else ExitCode.CLEAN)


def _shown(field: str) -> str:
    """A name, environment or store message from the configuration (anyone's text) as one
    field of a line: no key, no control character, no tab or newline that would start another."""
    return escape_control(scrub(field))


def _names(env: str | None) -> list[str]:
    env = env or os.environ.get("KEYSENTRY_ENV") or None
    if env is None:
        return [loader.DEFAULT_NAME]
    return sorted(loader.environment(loader.current_config(), env))
