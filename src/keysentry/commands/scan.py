"""`keysentry scan`: find keys, report them, exit 0 (clean), 1 (findings) or 2 (error)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from keysentry.config import load_config, parse_size
from keysentry.errors import ExitCode, InputError
from keysentry.safety import say
from keysentry.scanner.pipeline import ScanResult, Suppression, scan_files
from keysentry.scanner.report import render
from keysentry.scanner.sources.files import FileSource
from keysentry.scanner.suppress import (
    load_baseline,
    load_ignore_file,
    write_baseline,
    write_file,
)

_ALLOW_HINT = (
    "keysentry: not a real key? Add `keysentry:allow` in a comment on its line, or its "
    "fingerprint to .keysentryignore. A real one: revoke it, and load its replacement from the "
    "environment or a secret store."
)


class ScanOptions(NamedTuple):
    fmt: str = "text"
    output: Path | None = None
    show_secrets: bool = False
    no_inline_allow: bool = False
    baseline: Path | None = None
    update_baseline: bool = False
    ignore_file: Path | None = None
    no_gitignore: bool = False
    max_file_size: str | None = None
    config_path: Path | None = None
    quiet: bool = False
    staged: bool = False
    history: bool = False
    all_objects: bool = False
    since: str | None = None
    spans: tuple[str, ...] = ()
    allow_shallow: bool = False
    allow_incomplete: bool = False
    no_cache: bool = False
    verify_keys: bool = False
    fail_on: str = "any"
    accept_unknown: bool = False

    @property
    def git_mode(self) -> str | None:
        modes = [
            name
            for name, on in (
                ("--staged", self.staged),
                ("--history", self.history),
                ("--since", self.since is not None),
                ("--range", bool(self.spans)),
            )
            if on
        ]
        if len(modes) > 1:
            raise InputError(f"{' and '.join(modes)} cannot be combined")
        return modes[0] if modes else None

    @classmethod
    def from_click(cls, options: dict[str, Any]) -> ScanOptions:
        return cls(**options)


def run(paths: list[str], options: ScanOptions) -> int:
    """Scan, report, and return the exit code."""
    if options.fail_on == "live" and not options.verify_keys:
        raise InputError("--fail-on live needs --verify")
    if options.accept_unknown and options.fail_on != "live":
        raise InputError("--accept-unknown goes with --verify --fail-on live")
    result = execute(paths, options)
    live = unknown = 0
    if options.verify_keys and result.findings:
        from keysentry.commands.verify import verify_findings
        from keysentry.verify.client import translated

        live, unknown = translated(lambda: verify_findings(result, None))
    if options.update_baseline:
        assert options.baseline is not None
        count = write_baseline(options.baseline, result.unsuppressed)
        _note(options, f"keysentry: wrote {count} fingerprints to {options.baseline}")
        return int(ExitCode.CLEAN)
    write_report(result, options)
    summarize(result, options)
    if live:
        return int(ExitCode.LIVE)
    if incomplete(result, options):
        return int(ExitCode.ERROR)
    if options.fail_on == "live" and unverified(unknown, options.accept_unknown):
        return int(ExitCode.UNKNOWN)
    if options.fail_on == "live" or not result.findings:
        return int(ExitCode.CLEAN)
    return int(ExitCode.FINDINGS)


def unverified(unknown: int, accepted: bool) -> bool:
    """Whether keys whose verdict is unknown (the API did not answer) stand in the way of a
    `--fail-on live` pass: they do unless the user accepted that (--accept-unknown). Says so."""
    if not unknown:
        return False
    keys = f"{unknown} key{'s' * (unknown != 1)} found could not be verified"
    if accepted:
        print(f"keysentry: warning: {keys}; accepted (--accept-unknown)", file=sys.stderr)
        return False
    print(
        f"keysentry: error: {keys} (the OpenAI API did not answer): none is known to be live, "
        "which is not a pass; exit 4 (--accept-unknown accepts it)",
        file=sys.stderr,
    )
    return True


def incomplete(result: ScanResult, options: ScanOptions) -> bool:
    """Whether the scan could not read everything it was asked to, and the user did not accept
    that: then it is no pass, whatever it found (exit 2)."""
    return result.unreadable > 0 and not options.allow_incomplete


def execute(paths: list[str], options: ScanOptions) -> ScanResult:
    """Scan as the options say, suppressions applied; nothing printed."""
    if options.update_baseline and options.baseline is None:
        raise InputError("--update-baseline needs --baseline FILE")
    config = load_config(options.config_path).scan
    max_size = config.max_file_size
    if options.max_file_size is not None:
        max_size = parse_size(options.max_file_size, "--max-file-size")
    mode = options.git_mode
    if options.all_objects and mode != "--history":
        raise InputError("--all-objects goes with --history")
    baseline: frozenset[str] = frozenset()
    if options.baseline is not None and not options.update_baseline:
        baseline = load_baseline(options.baseline)
    suppression = Suppression(
        inline_allow=config.inline_allow and not options.no_inline_allow,
        ignore=load_ignore_file(options.ignore_file or Path(config.ignore_file)),
        baseline=baseline,
    )
    if mode is None:
        source = FileSource(
            paths, use_gitignore=not options.no_gitignore, max_file_size=max_size,
            exclude=config.exclude,
        )  # fmt: skip
        result = scan_files(source, suppression)
    else:
        result = _scan_repository(paths, mode, options, suppression, max_size)
    return result


def _scan_repository(
    paths: list[str], mode: str, options: ScanOptions, suppression: Suppression, max_size: int
) -> ScanResult:
    from keysentry.scanner.git.repo import open_repo, shallow_error
    from keysentry.scanner.git.scans import scan_commits, scan_history, scan_staged

    if len(paths) > 1:
        raise InputError(f"{mode} scans one repository: give at most one PATH")
    repo = open_repo(paths[0] if paths else ".")
    if mode == "--staged":
        return scan_staged(repo, suppression, max_blob_size=max_size)
    if mode == "--history":
        if repo.shallow and not options.allow_shallow:
            raise shallow_error(repo, "a history scan")
        result = scan_history(
            repo, suppression, all_objects=options.all_objects, max_blob_size=max_size,
            use_cache=not options.no_cache, progress=sys.stderr.isatty() and not options.quiet,
        )  # fmt: skip
    else:
        # A range is covered by a shallow clone when its start commit is there; scan_commits
        # fails when it is not.
        strict = repo.shallow and not options.allow_shallow
        spans, since = options.spans, options.since
        result = scan_commits(
            repo, suppression, since=since, spans=spans, strict=strict, max_blob_size=max_size
        )
    if repo.shallow:
        result.notes.insert(0, "shallow clone: commits before its cut-off were not scanned")
    return result


def write_report(result: ScanResult, options: ScanOptions) -> None:
    color = (
        options.output is None
        and options.fmt == "text"
        and sys.stdout.isatty()
        and "NO_COLOR" not in os.environ
    )
    report = render(result, options.fmt, show_secrets=options.show_secrets, color=color)
    if options.output is None:
        sys.stdout.write(report)
        sys.stdout.flush()
    else:
        write_file(options.output, report)


def summarize(result: ScanResult, options: ScanOptions) -> None:
    for skip in result.skipped:
        if skip.unreadable:
            say(f"keysentry: warning: {skip.path}: {skip.reason}")
        else:
            _note(options, f"keysentry: skipped {skip.path}: {skip.reason}")
    suppressed = ", ".join(f"{n} by {why}" for why, n in sorted(result.suppressed.items()))
    parts = [
        f"{len(result.findings)} finding{'s' * (len(result.findings) != 1)}",
        f"{result.blobs} {'blobs' if options.git_mode else 'files'} "
        f"({result.bytes / 1e6:.1f} MB) in {result.seconds:.2f}s",
    ]
    if suppressed:
        parts.append(f"suppressed {suppressed}")
    if result.skipped:
        parts.append(f"{len(result.skipped)} skipped")
    if result.unreadable:
        parts.append(f"{result.unreadable} unreadable")
    _note(options, "keysentry: " + "; ".join(parts))
    for note in result.notes:
        _note(options, f"keysentry: note: {note}")
    if result.unreadable:
        verdict = "accepted (--allow-incomplete)" if options.allow_incomplete else "exit 2"
        print(
            f"keysentry: error: incomplete scan: {result.unreadable} "
            f"{'item' if result.unreadable == 1 else 'items'} could not be read (named above); "
            f"{verdict}",
            file=sys.stderr,
        )
    if result.findings and options.fmt == "text":
        print(_ALLOW_HINT, file=sys.stderr)  # part of the report, so --quiet keeps it
    if result.blobs == 0 and not result.skipped and not result.notes:
        print("keysentry: warning: nothing was scanned", file=sys.stderr)


def _note(options: ScanOptions, line: str) -> None:
    if not options.quiet:
        say(line)  # names and refs in it: escaped, so they cannot forge lines
