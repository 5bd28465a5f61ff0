"""The human report: one line per finding, `path:line:column: what`."""

from __future__ import annotations

from keysentry.scanner.findings import Finding
from keysentry.scanner.keys import Confidence
from keysentry.scanner.pipeline import ScanResult

_BOLD, _RED, _YELLOW, _DIM, _RESET = "\033[1m", "\033[31m", "\033[33m", "\033[2m", "\033[0m"


def _where(finding: Finding) -> str:
    if finding.binary:
        return f"{finding.path}@{finding.offset}"
    return f"{finding.path}:{finding.line}:{finding.column}"


def format_finding(finding: Finding, show_secrets: bool, color: bool) -> str:
    value = finding.secret.reveal() if show_secrets else finding.redacted
    notes = [finding.kind.value]
    if finding.confidence is Confidence.LOW:
        notes.append("low confidence: unusual length")
    if finding.encoding:
        notes.append("+".join(finding.encoding) + "-encoded")
    where, title = _where(finding), finding.kind.label
    line = f"{where}: {title} {value} ({', '.join(notes)}) fingerprint {finding.fingerprint}"
    if not color:
        return line
    paint = _RED if finding.confidence is Confidence.HIGH else _YELLOW
    return (
        f"{_BOLD}{where}{_RESET}: {paint}{title}{_RESET} {value} "
        f"{_DIM}({', '.join(notes)}) fingerprint {finding.fingerprint}{_RESET}"
    )


def render(result: ScanResult, show_secrets: bool, color: bool) -> str:
    return "".join(format_finding(f, show_secrets, color) + "\n" for f in result.findings)
