"""`keysentry scan`: find keys, report them, exit 0 (clean), 1 (findings) or 2 (error).

Its configuration and ignore file are found where the user expects them: the nearest
keysentry.toml (or pyproject.toml) and .keysentryignore from the scanned directory (the
repository's root for git scans) up to the repository root, else the working directory's;
`--verbose` names each file used and every file passed over, and why.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from keysentry.config import (
    Config,
    ScanConfig,
    find_config,
    load_config,
    parse_size,
    search_path,
)
from keysentry.errors import ExitCode, InputError
from keysentry.safety import say
from keysentry.scanner.pipeline import ScanResult, Suppression, scan_files
from keysentry.scanner.report import render
from keysentry.scanner.sources.archives import Limits, limits_set
from keysentry.scanner.sources.files import STDIN, FileSource
from keysentry.scanner.suppress import (
    IgnoreRules,
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
    exclude: tuple[str, ...] = ()
    max_file_size: str | None = None
    image: str | None = None
    max_archive_depth: int | None = None
    max_archive_bytes: str | None = None
    max_archive_ratio: int | None = None
    max_archive_members: int | None = None
    config_path: Path | None = None
    quiet: bool = False
    pre_commit: bool = False  # the arguments came from pre-commit (see cli.files_as_files)
    verbose: bool = False
    no_color: bool = False
    staged: bool = False
    history: bool = False
    all_objects: bool = False
    branch: str | None = None
    since: str | None = None
    spans: tuple[str, ...] = ()
    allow_shallow: bool = False
    allow_incomplete: bool = False
    no_cache: bool = False
    verify_keys: bool = False
    fail_on: str = "any"
    exit_zero: bool = False
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

    @property
    def never_fails(self) -> bool:
        """Report without failing: findings and live keys exit 0 (errors still exit 2)."""
        return self.exit_zero or self.fail_on == "never"

    @classmethod
    def from_click(cls, options: dict[str, Any]) -> ScanOptions:
        return cls(**options)


def run(paths: list[str], options: ScanOptions) -> int:
    """Scan, report, and return the exit code."""
    _check_combinations(options)
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
        for skip in result.skipped:
            if skip.unreadable:
                say(f"keysentry: warning: {skip.path}: {skip.reason}")
        _say_incomplete(result, options)
        # A baseline of what could be read is written, but a scan that read less is no pass.
        return int(ExitCode.ERROR if incomplete(result, options) else ExitCode.CLEAN)
    write_report(result, options)
    summarize(result, options)
    if live and not options.never_fails:
        return int(ExitCode.LIVE)
    if incomplete(result, options):
        return int(ExitCode.ERROR)  # an incomplete scan is never a pass, --exit-zero or not
    if options.never_fails:
        return int(ExitCode.CLEAN)
    if options.fail_on == "live" and unverified(unknown, options.accept_unknown):
        return int(ExitCode.UNKNOWN)
    if options.fail_on == "live" or not result.findings:
        return int(ExitCode.CLEAN)
    return int(ExitCode.FINDINGS)


def _check_combinations(options: ScanOptions) -> None:
    if options.fail_on == "live" and not options.verify_keys:
        raise InputError("--fail-on live needs --verify")
    if options.accept_unknown and options.fail_on != "live":
        raise InputError("--accept-unknown goes with --verify --fail-on live")
    if options.exit_zero and options.fail_on != "any":
        raise InputError(f"--exit-zero and --fail-on {options.fail_on} cannot be combined")
    if options.quiet and options.verbose:
        raise InputError("--quiet and --verbose cannot be combined")


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


class _Setup(NamedTuple):
    """What a scan runs with, and where each part came from (for --verbose)."""

    config: Config
    suppression: Suppression
    max_size: int
    exclude: tuple[str, ...]
    used: list[str]  # lines for --verbose
    limits: Limits  # how far archives are opened


def execute(paths: list[str], options: ScanOptions) -> ScanResult:
    """Scan as the options say, suppressions applied; nothing printed (but --verbose lines)."""
    if options.update_baseline and options.baseline is None:
        raise InputError("--update-baseline needs --baseline FILE")
    mode = options.git_mode
    if options.all_objects and mode != "--history":
        raise InputError("--all-objects goes with --history")
    if options.branch is not None and mode != "--history":
        raise InputError("--branch goes with --history")
    if options.branch is not None and options.all_objects:
        raise InputError("--branch and --all-objects cannot be combined")
    if options.image is not None:
        return _scan_image(paths, mode, options)
    if mode is None:
        return _scan_paths(paths, options)
    from keysentry.scanner.git.repo import open_repo

    if len(paths) > 1:
        raise InputError(f"{mode} scans one repository: give at most one PATH")
    repo = open_repo(paths[0] if paths else ".")
    root = Path(repo.work_tree) if repo.work_tree else Path.cwd()
    setup = _setup(options, root, shown_base=root)
    _say_used(options, setup.used)
    with limits_set(setup.limits):
        return _scan_repository(repo, mode, options, setup.suppression, setup.max_size)


def _scan_image(paths: list[str], mode: str | None, options: ScanOptions) -> ScanResult:
    """`--image NAME`: every layer (deleted files included) and the config of one image."""
    from keysentry.scanner.pipeline import scan_blobs
    from keysentry.scanner.sources.image import image_blobs

    if paths:
        raise InputError("--image scans one image: give no PATH")
    if mode is not None:
        raise InputError(f"--image and {mode} cannot be combined")
    setup = _setup(options, Path.cwd(), shown_base=Path.cwd())
    _say_used(options, setup.used)
    assert options.image is not None
    with limits_set(setup.limits):
        return scan_blobs(image_blobs(options.image), setup.suppression)


def _scan_paths(paths: list[str], options: ScanOptions) -> ScanResult:
    named = [p for p in paths if p != STDIN]
    directories = [p for p in named if os.path.isdir(p)]
    root = Path(named[0]) if len(named) == 1 else Path.cwd()
    # Reports show paths as given: relative ones from here, absolute ones from /.
    absolute = bool(named) and all(os.path.isabs(p) for p in named)
    shown_base = Path("/") if absolute else Path.cwd()
    setup = _setup(options, root, shown_base=shown_base)
    kept = [p for p in paths if p in directories or p == STDIN or not _excluded(p, setup)]
    dropped = [p for p in paths if p not in kept]
    result: ScanResult
    if paths and not kept:  # every file named was excluded: nothing to scan, and no `.`
        result = ScanResult()
    else:
        source = FileSource(
            kept,
            use_gitignore=not options.no_gitignore,
            max_file_size=setup.max_size,
            exclude=setup.exclude,
        )
        with limits_set(setup.limits):
            result = scan_files(source, setup.suppression)
        dropped += source.excluded
    _say_used(options, setup.used)
    if options.verbose:
        for path in dropped:
            say(f"keysentry: excluded {path} (an exclude pattern matches it)")
    if not options.no_gitignore:
        _count_ignored_keys(directories or ([] if paths else ["."]), setup.exclude, result, options)
    if dropped:
        result.notes.append(
            f"{len(dropped)} excluded by pattern"
            + " (--verbose names them)" * (not options.verbose)
        )
    return result


def _excluded(path: str, setup: _Setup) -> bool:
    shown = os.path.normpath(path).replace(os.sep, "/")
    return any(fnmatch.fnmatchcase(shown, p) for p in setup.exclude)


def _setup(options: ScanOptions, root: Path, *, shown_base: Path) -> _Setup:
    """The config, suppressions, size limit and excludes of a scan of `root`, found where the
    user expects them. `shown_base` is the directory the report's paths are relative to."""
    used: list[str] = []
    if options.config_path is not None:
        config = load_config(options.config_path)
    else:
        config = find_config(root)
    if config.path is not None:
        used.append(f"config: {config.path}")
    else:
        looked = ", ".join(str(d) for d in search_path(root))
        used.append(f"config: none (no keysentry.toml or [tool.keysentry] in {looked} or here)")
    scan = config.scan
    max_size = scan.max_file_size
    if options.max_file_size is not None:
        max_size = parse_size(options.max_file_size, "--max-file-size")
    exclude = (*scan.exclude, *options.exclude)
    if exclude:
        used.append(f"exclude: {', '.join(exclude)}")
    baseline: frozenset[str] = frozenset()
    if options.baseline is not None and not options.update_baseline:
        baseline = load_baseline(options.baseline)
        used.append(f"baseline: {options.baseline} ({len(baseline)} fingerprints)")
    ignore = _ignore_rules(options, config, root, shown_base, used)
    suppression = Suppression(
        inline_allow=scan.inline_allow and not options.no_inline_allow,
        ignore=ignore,
        baseline=baseline,
    )
    return _Setup(config, suppression, max_size, exclude, used, _limits(options, scan, max_size))


def _limits(options: ScanOptions, scan: ScanConfig, max_size: int) -> Limits:
    """The archive limits: each option, else the config's [scan] key, else the default."""
    default = Limits()
    size = options.max_archive_bytes
    return Limits(
        max_depth=_first(options.max_archive_depth, scan.max_archive_depth, default.max_depth),
        max_bytes=_first(
            parse_size(size, "--max-archive-bytes") if size is not None else None,
            scan.max_archive_bytes,
            default.max_bytes,
        ),
        max_ratio=_first(options.max_archive_ratio, scan.max_archive_ratio, default.max_ratio),
        max_members=_first(
            options.max_archive_members, scan.max_archive_members, default.max_members
        ),
        max_member_size=max_size,
    )


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def _ignore_rules(
    options: ScanOptions, config: Config, root: Path, shown_base: Path, used: list[str]
) -> IgnoreRules:
    """The ignore file: --ignore-file, else the config's `ignore_file` name (.keysentryignore)
    nearest `root` up to the repository root, else beside the config, else here; its path
    patterns are relative to its own directory."""
    if options.ignore_file is not None:
        path = options.ignore_file
        rules = load_ignore_file(path)
    else:
        name = config.scan.ignore_file
        candidates = [d / name for d in search_path(root)]
        if config.path is not None:
            candidates.append(config.path.parent / name)
        candidates.append(Path(name))
        path = next((c for c in candidates if c.is_file()), candidates[0])
        rules = _relative_to(load_ignore_file(path), path.parent, shown_base)
    if path.is_file():
        used.append(
            f"ignore file: {path} ({len(rules.fingerprints)} fingerprints, "
            f"{len(rules.path_patterns)} path patterns)"
        )
    else:
        used.append(f"ignore file: none ({path} does not exist)")
    return rules


def _relative_to(rules: IgnoreRules, directory: Path, shown_base: Path) -> IgnoreRules:
    """Rules whose path patterns (relative to `directory`) match paths as the report shows
    them (relative to `shown_base`). A pattern still matches a file's name anywhere."""
    if not rules.path_patterns:
        return rules
    base = shown_base.resolve()
    here = directory.resolve()
    prefix = str(here) if base == Path("/") else os.path.relpath(here, base)
    if prefix == "." or prefix.startswith(".."):
        return rules
    prefix = prefix.replace(os.sep, "/").rstrip("/") + "/"
    return rules._replace(path_patterns=tuple(prefix + p for p in rules.path_patterns))


def _say_used(options: ScanOptions, used: list[str]) -> None:
    if options.verbose:
        for line in used:
            say(f"keysentry: {line}")


def _count_ignored_keys(
    directories: list[str], exclude: tuple[str, ...], result: ScanResult, options: ScanOptions
) -> None:
    """Say how many gitignored files hold a key: a clean summary must not hide them."""
    if not directories:
        return  # files named one by one (pre-commit's): no directory to look in
    from keysentry.scanner.sources.gitignored import ignored_with_keys

    holding: list[str] = []
    unchecked = 0
    for directory in directories:
        found = ignored_with_keys(directory, exclude)
        if found is not None:
            holding += found.with_keys
            unchecked += found.unchecked
    if holding:
        if len(holding) == 1:
            files = "1 gitignored file holds a key"
        else:
            files = f"{len(holding)} gitignored files hold keys"
        result.notes.append(f"{files}: run with --no-gitignore to see them")
    if options.verbose:
        for path in holding:
            say(f"keysentry: gitignored, holds a key: {path}")
        if unchecked:
            say(
                f"keysentry: {unchecked} gitignored files were not checked for keys "
                "(over 1 MiB each, or past 64 MiB read in all)"
            )


def _scan_repository(
    repo: Any, mode: str, options: ScanOptions, suppression: Suppression, max_size: int
) -> ScanResult:
    from keysentry.scanner.git.repo import shallow_error
    from keysentry.scanner.git.scans import scan_commits, scan_history, scan_staged

    if mode == "--staged":
        return scan_staged(repo, suppression, max_blob_size=max_size)
    if mode == "--history":
        if repo.shallow and not options.allow_shallow:
            raise shallow_error(repo, "a history scan")
        result = scan_history(
            repo,
            suppression,
            all_objects=options.all_objects,
            max_blob_size=max_size,
            use_cache=not options.no_cache,
            progress=sys.stderr.isatty() and not options.quiet,
            branch=options.branch,
        )
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


def wants_color(options: ScanOptions) -> bool:
    """Colour only on a terminal, for the text report, unless --no-color or NO_COLOR (any
    non-empty value, as no-color.org says)."""
    return (
        not options.no_color
        and not os.environ.get("NO_COLOR")
        and options.output is None
        and options.fmt == "text"
        and sys.stdout is not None
        and sys.stdout.isatty()
    )


def write_report(result: ScanResult, options: ScanOptions) -> None:
    color = wants_color(options)
    report = render(result, options.fmt, show_secrets=options.show_secrets, color=color)
    if options.output is None:
        if sys.stdout is None:  # started with its standard output closed (`>&-`)
            if report:
                raise InputError("standard output is closed: the report has nowhere to go")
            return
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
    _say_incomplete(result, options)
    if result.findings and options.fmt == "text":
        print(_ALLOW_HINT, file=sys.stderr)  # part of the report, so --quiet keeps it
    if result.blobs == 0 and not result.skipped and not result.notes:
        print("keysentry: warning: nothing was scanned", file=sys.stderr)


def _say_incomplete(result: ScanResult, options: ScanOptions) -> None:
    """The line that says a scan is incomplete: an error (exit 2), or a warning once the user
    accepted it with --allow-incomplete."""
    if not result.unreadable:
        return
    level, verdict = ("warning", "accepted (--allow-incomplete)")
    if not options.allow_incomplete:
        level, verdict = ("error", "exit 2")
    items = "item" if result.unreadable == 1 else "items"
    print(
        f"keysentry: {level}: incomplete scan: {result.unreadable} {items} could not be read "
        f"(named above); {verdict}",
        file=sys.stderr,
    )


def _note(options: ScanOptions, line: str) -> None:
    if not options.quiet:
        say(line)  # names and refs in it: escaped, so they cannot forge lines
