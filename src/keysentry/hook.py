"""The `keysentry` command's entry point: the command lines machines run on every commit and
push go straight to their command, without the click CLI; every other one goes on to it.

The pre-commit hook (`keysentry scan --pre-commit --quiet FILES`), the plain git hooks that
`install-hook` writes (`python -m keysentry scan --staged`, `keysentry pre-push`) and history
rescans in CI (`keysentry scan --history`) run on every commit, push or build. Importing click
and building the CLI costs about 20 ms there, a third of a staged scan. So this module reads
exactly those command lines itself, with a parser that accepts only plain forms of a fixed set
of options, and calls the same command bodies as the CLI (`commands.scan.run`). Anything else
(help, completion, --version, an option it does not know, a repeated or `=`-less value it is
unsure of, `--`, a usage error) goes to `cli.main`, which parses it as it always has. A command
line therefore means the same on either path: this one only ever runs what click would run.

The quiet forms of the hooks' and CI's scans (`--pre-commit --quiet`, `--staged --quiet`,
`--history --quiet`, no other option) first ask scanner/precheck.py whether the scan could
only come out clean; when it could, they exit 0 at once, as the scan would have, without
setting it up (its imports are two thirds of a clean commit's time).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not `typing`'s: importing it costs the hook 15 ms on Python 3.11
if TYPE_CHECKING:
    from collections.abc import Callable

PRE_COMMIT_FLAG = "--pre-commit"
_DEBUG = "--debug"

# scan's flags (option -> ScanOptions field) and single-value options the fast path reads;
# values are taken only in the plain forms `--opt VALUE` and `--opt=VALUE`.
_SCAN_FLAGS = {
    "--staged": "staged",
    "--history": "history",
    PRE_COMMIT_FLAG: "pre_commit",
    "--quiet": "quiet",
    "-q": "quiet",
    "--verbose": "verbose",
    "-v": "verbose",
    "--no-cache": "no_cache",
    "--no-inline-allow": "no_inline_allow",
    "--allow-incomplete": "allow_incomplete",
    "--allow-shallow": "allow_shallow",
    "--exit-zero": "exit_zero",
    "--no-color": "no_color",
    "--no-gitignore": "no_gitignore",
    "--all-objects": "all_objects",
}
_SCAN_VALUES = {
    "--format": "fmt",
    "--max-file-size": "max_file_size",
    "--since": "since",
    "--branch": "branch",
}
_SCAN_REPEATED = {"--exclude": "exclude", "--range": "spans"}
# The machine paths' options (pre-commit's hook, the git hook `install-hook` writes, a quiet
# history rescan): with these alone, a scan seen to come out clean at a glance
# (scanner/precheck.py) needs no full scan.
_PRE_COMMIT_OPTIONS = {"pre_commit": True, "quiet": True}
_STAGED_OPTIONS = {"staged": True, "quiet": True}
_HISTORY_OPTIONS = {"history": True, "quiet": True}  # CI's rescan: a clean last result reused
_CLEAN = 0  # ExitCode.CLEAN, without importing `enum` (a test holds them equal)
_PUSH_FLAGS = {"--allow-shallow": "allow_shallow"}
_PUSH_VALUES = {"--format": "fmt"}


def files_as_files(argv: list[str]) -> list[str]:
    """After `scan --pre-commit`, every argument that names an existing file and would parse
    as an option (`-`, `--exit-zero`) becomes `./name`. pre-commit appends the file names to the
    hook's arguments, and a committed file named `--exit-zero` must be scanned, never obeyed.
    This only ever turns an option into a path (a scan of more), never a path into an option."""
    if PRE_COMMIT_FLAG not in argv:
        return argv
    start = argv.index(PRE_COMMIT_FLAG) + 1
    tail = [f"./{a}" if a.startswith("-") and os.path.lexists(a) else a for a in argv[start:]]
    return argv[:start] + tail


class _NotPlain(Exception):
    """The command line is not one the fast path reads: click parses it instead."""


def _parse(
    args: list[str],
    flags: dict[str, str],
    values: dict[str, str],
    repeated: dict[str, str],
) -> tuple[list[str], dict[str, object], bool]:
    """(positional arguments, option values by field, --debug) of a plain command line."""
    positional: list[str] = []
    options: dict[str, object] = {}
    debug = False
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "-" or not arg.startswith("-"):
            positional.append(arg)
            continue
        name, equals, value = arg.partition("=")
        if name == _DEBUG and not equals:
            debug = True
        elif name in flags and not equals:
            options[flags[name]] = True
        elif name in values or name in repeated:
            if not equals:
                if index == len(args) or args[index].startswith("-"):
                    raise _NotPlain  # click's error, or a value that looks like an option
                value = args[index]
                index += 1
            if name in repeated:
                field = repeated[name]
                options[field] = (*options.get(field, ()), value)  # type: ignore[misc]
            elif values[name] in options:
                raise _NotPlain  # given twice: click keeps the last, let it say so
            else:
                options[values[name]] = value
        else:
            raise _NotPlain
    return positional, options, debug


def _fast_command(argv: list[str]) -> tuple[Callable[[], int], bool] | None:
    """The command `argv` runs and whether --debug was given, when the fast path reads it;
    None sends it to click."""
    if os.environ.get("_KEYSENTRY_COMPLETE"):
        return None  # shell completion is click's
    debug = False
    while argv and argv[0] == _DEBUG:
        debug, argv = True, argv[1:]
    if not argv or argv[0] not in ("scan", "pre-push"):
        return None
    pushing = argv[0] == "pre-push"
    try:
        if pushing:
            paths, options, more = _parse(argv[1:], _PUSH_FLAGS, _PUSH_VALUES, {})
        else:
            paths, options, more = _parse(
                files_as_files(argv[1:]), _SCAN_FLAGS, _SCAN_VALUES, _SCAN_REPEATED
            )
    except _NotPlain:
        return None
    if "fmt" in options:
        from keysentry.scanner.report import FORMATS

        if options["fmt"] not in FORMATS:
            return None  # click names the choices
    if not all(map(_click_accepts, paths)) or (pushing and not _a_directory(paths)):
        return None  # click says why

    if pushing:
        return (lambda: pre_push(paths[0] if paths else ".", **options)), debug or more  # type: ignore[arg-type]

    def scan() -> int:
        if _clean_at_a_glance(paths, options):
            return _CLEAN  # what the full scan would exit with, having printed nothing
        from keysentry.commands.scan import ScanOptions, run

        return run(paths, ScanOptions(**options))  # type: ignore[arg-type]

    return scan, debug or more


def _clean_at_a_glance(paths: list[str], options: dict[str, object]) -> bool:
    """Whether a machine path's scan can only come out clean, seen without setting it up."""
    if options == _PRE_COMMIT_OPTIONS:
        from keysentry.scanner.precheck import clean_files

        return clean_files(paths)
    if len(paths) > 1:
        return False
    if options == _STAGED_OPTIONS:
        from keysentry.scanner.precheck import clean_staged

        return clean_staged(paths[0] if paths else os.curdir)
    if options == _HISTORY_OPTIONS:
        from keysentry.scanner.precheck import clean_history

        return clean_history(paths[0] if paths else os.curdir)
    return False


def _click_accepts(path: str) -> bool:
    """What click.Path checks of an argument: one that exists must be readable."""
    return path == "-" or not os.path.exists(path) or os.access(path, os.R_OK)


def _a_directory(paths: list[str]) -> bool:
    """pre-push's PATH: at most one, and (click.Path(file_okay=False)) not a file."""
    return len(paths) <= 1 and not (
        paths and os.path.exists(paths[0]) and not os.path.isdir(paths[0])
    )


def pre_push(path: str, fmt: str = "text", allow_shallow: bool = False) -> int:
    """Scan the commits a push sends: the ranges from pre-commit's PRE_COMMIT_FROM_REF and
    PRE_COMMIT_TO_REF, or from the lines git writes to a pre-push hook's standard input."""
    from keysentry.commands import hooks
    from keysentry.commands.scan import ScanOptions, run
    from keysentry.errors import ExitCode

    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    spans = hooks.push_spans(stdin, dict(os.environ))
    if not spans:
        print("keysentry: nothing to push: no commits to scan", file=sys.stderr)
        return int(ExitCode.CLEAN)
    return run([path], ScanOptions(fmt=fmt, spans=tuple(spans), allow_shallow=allow_shallow))


def main(argv: list[str] | None = None) -> int:
    """Run `keysentry ARGS`: a machine path here, anything else through the click CLI. Errors
    end as `cli.main` ends them: one scrubbed line on stderr and the error's exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    fast = _fast_command(args)
    if fast is None:
        from keysentry.cli import main as cli_main

        return cli_main(args)
    command, debug = fast
    return guarded(command, lambda: debug or bool(os.environ.get("KEYSENTRY_DEBUG")))


def guarded(command: Callable[[], int], debug: Callable[[], bool]) -> int:
    """Run `command`; every error is one scrubbed line with its exit code (with --debug, an
    internal error's traceback too, each line scrubbed). The one error boundary of both entry
    points: this one and `cli.main`. `debug` is asked only when a bug is met, since the
    click CLI learns it while parsing."""
    try:
        return int(command() or 0)
    except (KeyboardInterrupt, Exception) as exc:
        return _ended_by(exc, debug)


def _ended_by(exc: BaseException, debug: Callable[[], bool]) -> int:
    """The exit code of a command that raised `exc`, its one line said. The modules this
    needs are imported only here: a scan that ends well never pays for them."""
    from keysentry.errors import ExitCode, KeysentryError
    from keysentry.safety import say

    if isinstance(exc, KeyboardInterrupt):
        say("keysentry: interrupted")
        return int(ExitCode.INTERRUPTED)
    if isinstance(exc, KeysentryError):
        say(f"keysentry: error: {exc}")
        return int(exc.exit_code)
    if isinstance(exc, BrokenPipeError):
        sys.stderr.close()  # the reader went away (`| head`); nothing left to say
        return int(ExitCode.ERROR)
    # A bug: still one line, and scrubbed of anything key-shaped.
    tracing = debug()
    if tracing:
        import traceback

        for block in traceback.format_exception(exc):
            for line in block.splitlines():
                say(line)  # each line scrubbed and escaped, like every other
    hint = "" if tracing else " (run again with --debug for the traceback)"
    say(f"keysentry: internal error: {type(exc).__name__}: {exc}{hint}")
    return int(ExitCode.ERROR)
