"""`keysentry scan`: find keys, report them, exit 0 (clean), 1 (findings) or 2 (error)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keysentry.config import load_config, parse_size
from keysentry.errors import ExitCode, InputError
from keysentry.scanner.detect import detect
from keysentry.scanner.pipeline import ScanResult, Suppression, scan_files
from keysentry.scanner.report import render
from keysentry.scanner.sources.files import FileSource
from keysentry.scanner.suppress import (
    load_baseline,
    load_ignore_file,
    write_atomically,
    write_baseline,
)
from keysentry.secret import redact

_ALLOW_HINT = (
    "keysentry: not a real key? Add `keysentry:allow` in a comment on its line, or its "
    "fingerprint to .keysentryignore. A real one: revoke it, and load its replacement from the "
    "environment or a secret store."
)


@dataclass(frozen=True)
class ScanOptions:
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

    @classmethod
    def from_click(cls, options: dict[str, Any]) -> ScanOptions:
        return cls(**options)


def run(paths: list[str], options: ScanOptions) -> int:
    if options.update_baseline and options.baseline is None:
        raise InputError("--update-baseline needs --baseline FILE")
    config = load_config(options.config_path).scan
    max_size = config.max_file_size
    if options.max_file_size is not None:
        max_size = parse_size(options.max_file_size, "--max-file-size")
    source = FileSource(
        paths,
        use_gitignore=not options.no_gitignore,
        max_file_size=max_size,
        exclude=config.exclude,
    )
    baseline: frozenset[str] = frozenset()
    if options.baseline is not None and not options.update_baseline:
        baseline = load_baseline(options.baseline)
    suppression = Suppression(
        inline_allow=config.inline_allow and not options.no_inline_allow,
        ignore=load_ignore_file(options.ignore_file or Path(config.ignore_file)),
        baseline=baseline,
    )
    result = scan_files(source, suppression)
    if options.update_baseline:
        assert options.baseline is not None
        count = write_baseline(options.baseline, result.unsuppressed)
        _note(options, f"keysentry: wrote {count} fingerprints to {options.baseline}")
        return int(ExitCode.CLEAN)
    _write_report(result, options)
    _summarize(result, options)
    return int(ExitCode.FINDINGS if result.findings else ExitCode.CLEAN)


def _write_report(result: ScanResult, options: ScanOptions) -> None:
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
        write_atomically(options.output, report)


def _summarize(result: ScanResult, options: ScanOptions) -> None:
    for skip in result.skipped:
        if skip.unreadable:
            print(f"keysentry: warning: {skip.path}: {skip.reason}", file=sys.stderr)
        else:
            _note(options, f"keysentry: skipped {skip.path}: {skip.reason}")
    suppressed = ", ".join(f"{n} by {why}" for why, n in sorted(result.suppressed.items()))
    parts = [
        f"{len(result.findings)} finding{'s' * (len(result.findings) != 1)}",
        f"{result.blobs} files ({result.bytes / 1e6:.1f} MB) in {result.seconds:.2f}s",
    ]
    if suppressed:
        parts.append(f"suppressed {suppressed}")
    if result.skipped:
        parts.append(f"{len(result.skipped)} skipped")
    if result.unreadable:
        parts.append(f"{result.unreadable} unreadable")
    _note(options, "keysentry: " + "; ".join(parts))
    if result.findings and options.fmt == "text":
        _note(options, _ALLOW_HINT)
    if result.blobs == 0 and not result.skipped:
        print("keysentry: warning: nothing was scanned", file=sys.stderr)


def _note(options: ScanOptions, line: str) -> None:
    if not options.quiet:
        print(line, file=sys.stderr)


def scrub(text: str) -> str:
    """`text` with every OpenAI key in it redacted: for messages keysentry did not write."""
    data = text.encode("utf-8", "surrogateescape")
    for match in reversed(detect(data)):
        shown = redact(match.key.decode("ascii"), match.classified.prefix).encode()
        data = data[: match.start] + shown + data[match.end :]
    return data.decode("utf-8", "surrogateescape")
