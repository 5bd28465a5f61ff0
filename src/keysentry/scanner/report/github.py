"""GitHub Actions workflow commands: one `::error` annotation per finding."""

from __future__ import annotations

from keysentry.scanner.findings import Finding
from keysentry.scanner.keys import Confidence
from keysentry.scanner.pipeline import ScanResult


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding, show_secrets: bool) -> str:
    level = "error" if finding.confidence is Confidence.HIGH else "warning"
    value = finding.secret.reveal() if show_secrets else finding.redacted
    props = {
        "file": finding.path,
        "line": str(finding.line),
        "col": str(finding.column),
        "endColumn": str(finding.end_column),
        "title": finding.kind.label,
    }
    properties = ",".join(f"{k}={escape_property(v)}" for k, v in props.items())
    message = (
        f"{finding.kind.label} {value} (fingerprint {finding.fingerprint}). Move it to a secret "
        "store and rotate it: it is exposed to everyone who can read this code."
    )
    return f"::{level} {properties}::{escape_data(message)}"


def render(result: ScanResult, show_secrets: bool, color: bool) -> str:
    return "".join(annotation(f, show_secrets) + "\n" for f in result.findings)
