"""`keysentry action`: the body of the GitHub Actions step (action.yml).

It picks what to scan from the event (push: before..after, a new branch or a force push
included; pull_request: base..head; schedule, workflow_dispatch and anything else: the whole
history), writes annotations (the first ten; GitHub drops the rest), a step summary table, a
SARIF file for `github/codeql-action/upload-sarif` and the `findings` output, and fails as
`fail-on` says: `any` finding (exit 1), only a `live` key (checked against the OpenAI API;
exit 3), or `never`. It never writes a key anywhere: every output is redacted. File names,
authors and error text never write a workflow command of their own: annotations escape them
as command data (report/github.py), the step summary escapes control characters and Markdown
table syntax, and `$GITHUB_OUTPUT` values that could hold a newline are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keysentry.commands.scan import (
    ScanOptions,
    execute,
    incomplete,
    summarize,
    unverified,
    write_report,
)
from keysentry.errors import ExitCode, InputError, KeysentryError
from keysentry.safety import escape_control, say, scrub
from keysentry.scanner.pipeline import ScanResult
from keysentry.scanner.report import FORMATS, render
from keysentry.scanner.report.github import escape_data

ANNOTATION_LIMIT = 10  # per step and level; GitHub silently drops the rest
SUMMARY_LIMIT = 1 << 20  # bytes per step summary
_PULL_REQUESTS = ("pull_request", "pull_request_target")


def scan_options(environ: dict[str, str]) -> tuple[list[str], ScanOptions]:
    """The repository path and scan options for the event and the action's inputs."""
    path = environ.get("KS_PATH") or "."
    span = environ.get("KS_RANGE", "").strip()
    baseline = environ.get("KS_BASELINE")
    fmt = environ.get("KS_FORMAT") or "text"
    if fmt not in FORMATS:
        raise InputError(f"format takes one of {', '.join(FORMATS)}, got {fmt!r}")

    def plan(**mode: Any) -> ScanOptions:
        return ScanOptions(fmt=fmt, baseline=Path(baseline) if baseline else None, **mode)

    if span:
        return [path], plan(spans=(span,))
    event_name = environ.get("GITHUB_EVENT_NAME", "")
    event = _event(environ)
    if event_name == "push":
        before, after = event.get("before"), event.get("after")
        if not after:
            raise InputError("the push event has no 'after' commit")
        return [path], plan(spans=(f"{before or '0' * 40}..{after}",))
    if event_name in _PULL_REQUESTS:
        pull = event.get("pull_request") or {}
        base, head = pull.get("base", {}).get("sha"), pull.get("head", {}).get("sha")
        if not base or not head:
            raise InputError(f"the {event_name} event has no base and head commits")
        return [path], plan(spans=(f"{base}..{head}",))
    return [path], plan(history=True)


def _event(environ: dict[str, str]) -> dict[str, Any]:
    event_path = environ.get("GITHUB_EVENT_PATH")
    if not event_path:
        return {}
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the event payload {event_path}: {exc}") from None
    return event if isinstance(event, dict) else {}


def run(environ: dict[str, str]) -> int:
    if _flag(environ, "KS_ROTATE_DUE", "rotate-due"):
        return rotate_due(environ)
    fail_on = environ.get("KS_FAIL_ON") or "any"
    live = unknown = 0
    try:
        if fail_on not in ("any", "live", "never"):
            raise InputError(f"fail-on takes any, live or never, got {fail_on!r}")
        accepting = accept_unknown(environ)
        if any(char in environ.get("KS_SARIF_FILE", "") for char in "\r\n"):
            raise InputError("sarif-file must be a file name on one line")
        paths, options = scan_options(environ)
        result = execute(paths, options)
        if fail_on == "live" and result.findings:
            # Each key found is checked with one unbilled GET /models (OPENAI_BASE_URL).
            from keysentry.commands.verify import verify_findings
            from keysentry.verify.client import translated

            live, unknown = translated(lambda: verify_findings(result, None))
    except KeysentryError as exc:
        print(f"::error title=keysentry::{escape_data(str(exc))}")
        say(f"keysentry: error: {exc}")
        return int(exc.exit_code)
    write_report(result, options)
    summarize(result, options)
    _annotate(result)
    _write_outputs(result, environ)
    if result.unreadable and not options.allow_incomplete:
        print(
            f"::error title=keysentry::{escape_data(_incomplete(result))}: not a pass "
            "(the step log and summary name what was not read)"
        )
    if live:
        return int(ExitCode.LIVE)
    if incomplete(result, options):
        return int(ExitCode.ERROR)
    if fail_on == "live" and unverified(unknown, accepting):
        print(
            f"::error title=keysentry::{unknown} key(s) found could not be verified (the OpenAI "
            "API did not answer): not a pass (the accept-unknown input accepts it)"
        )
        return int(ExitCode.UNKNOWN)
    if result.findings and fail_on == "any":
        return int(ExitCode.FINDINGS)
    return int(ExitCode.CLEAN)


def _flag(environ: dict[str, str], name: str, shown: str) -> bool:
    try:
        return _boolean(environ.get(name), shown)
    except InputError:
        return True  # rotate_due reports it as the step's error


def _boolean(value: str | None, shown: str) -> bool:
    text = (value or "false").strip().lower()
    if text not in ("true", "false"):
        raise InputError(f"{shown} takes true or false, got {text!r}")
    return text == "true"


def rotate_due(environ: dict[str, str]) -> int:
    """The `rotate-due` input: instead of scanning, rotate every environment of the
    repository's config that is due (`keysentry rotate --due --yes`: over its maximum key age,
    or its key in the history), for a scheduled workflow. The admin key comes from
    OPENAI_ADMIN_KEY (a repository secret, which the runner masks) or [verify].admin_key;
    keysentry never prints it, nor any other key."""
    import os

    from keysentry import loader
    from keysentry.commands.rotate import Options
    from keysentry.commands.rotate import run as rotate
    from keysentry.verify.client import translated

    here = os.getcwd()
    try:
        _boolean(environ.get("KS_ROTATE_DUE"), "rotate-due")
        os.chdir(environ.get("KS_PATH") or ".")  # the repository's config and history
        loader.configure(None)
        return translated(lambda: rotate(Options(due=True, yes=True)))
    except (KeysentryError, OSError) as exc:
        text = str(exc) if isinstance(exc, KeysentryError) else f"cannot enter the path: {exc}"
        print(f"::error title=keysentry rotate::{escape_data(text)}")
        say(f"keysentry: error: {text}")
        return int(exc.exit_code if isinstance(exc, KeysentryError) else ExitCode.ERROR)
    finally:
        os.chdir(here)


def accept_unknown(environ: dict[str, str]) -> bool:
    """The `accept-unknown` input: with `fail-on: live`, pass when no key is known live even
    if some could not be verified (default: that fails with exit 4)."""
    value = (environ.get("KS_ACCEPT_UNKNOWN") or "false").strip().lower()
    if value not in ("true", "false"):
        raise InputError(f"accept-unknown takes true or false, got {value!r}")
    return value == "true"


def _annotate(result: ScanResult) -> None:
    lines = render(result, "github", show_secrets=False, color=False).splitlines()
    for line in lines[:ANNOTATION_LIMIT]:
        print(line)
    if len(lines) > ANNOTATION_LIMIT:
        print(
            f"::notice title=keysentry::{len(lines) - ANNOTATION_LIMIT} more findings are in "
            "the step summary and the SARIF file (GitHub shows 10 annotations per step)"
        )


def _write_outputs(result: ScanResult, environ: dict[str, str]) -> None:
    sarif = environ.get("KS_SARIF_FILE")
    if sarif:
        Path(sarif).write_text(render(result, "sarif", show_secrets=False, color=False))
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(step_summary(result))
    output = environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"findings={len(result.findings)}\n")
            handle.write(f"incomplete={str(result.unreadable > 0).lower()}\n")
            if sarif:
                handle.write(f"sarif-file={sarif}\n")


def step_summary(result: ScanResult) -> str:
    """A Markdown table of the findings, redacted, cut to fit GitHub's 1 MiB, after what
    could not be read, if anything (then no scan is called clean)."""
    unread = _unread(result)
    if not result.findings:
        if unread:
            return f"### keysentry: no OpenAI keys found in what could be read\n\n{unread}"
        return f"### keysentry: no OpenAI keys found\n\nScanned {result.blobs} blobs.\n"
    head = unread + (
        f"### keysentry: {len(result.findings)} OpenAI key(s) found\n\n"
        "| file | line | kind | key | introduced | fingerprint |\n|---|---|---|---|---|---|\n"
    )
    rows: list[str] = []
    size = len(head)
    for finding in result.findings:
        introduced = finding.provenance.get("git", {}).get("introduced")
        commit = introduced["commit"][:12] if introduced else ""
        row = (
            f"| `{_cell(scrub(finding.path))}` | {finding.line} | {finding.kind.value} | "
            f"`{finding.redacted}` | {commit} | `{finding.fingerprint}` |\n"
        )
        if size + len(row) > SUMMARY_LIMIT - 200:
            rows.append(f"\n{len(result.findings) - len(rows)} more: see the SARIF file.\n")
            break
        rows.append(row)
        size += len(row)
    return head + "".join(rows)


def _incomplete(result: ScanResult) -> str:
    items = "item" if result.unreadable == 1 else "items"
    return f"incomplete scan: {result.unreadable} {items} could not be read"


def _unread(result: ScanResult) -> str:
    """Markdown naming each item that could not be read, and why ('' when all was read)."""
    items = [s for s in result.skipped if s.unreadable][:100]
    if not items:
        return ""
    lines = [f"- `{_cell(scrub(s.path))}`: {_cell(scrub(s.reason))}\n" for s in items]
    return f"**{_incomplete(result)}**:\n\n" + "".join(lines) + "\n"


def _cell(text: str) -> str:
    """`text` for a Markdown table cell in a code span: on one line, no cell or span end."""
    return escape_control(text).replace("|", "\\|").replace("`", "'")
