"""GitHub Actions workflow commands: one `::error` annotation per finding.

The runner reads every line of a step's output as a possible command, so a file name must
never end a line: command data escapes `%`, CR and LF as the runner expects (and properties
`:` and `,` as well), and every other control character, and each byte of a name that is not
UTF-8, is written as a visible escape (`\u001b`, `\xff`), so no ANSI sequence reaches the log.
"""

from __future__ import annotations

from keysentry.safety import escape_control
from keysentry.scanner.findings import Finding
from keysentry.scanner.keys import Confidence
from keysentry.scanner.pipeline import ScanResult
from keysentry.scanner.report import shown


def escape_data(text: str) -> str:
    """`text` as workflow-command data: one line, nothing the runner or a terminal acts on."""
    workflow = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return escape_control(workflow)


def escape_property(text: str) -> str:
    """`text` as a workflow-command property value (`file=...`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding, show_secrets: bool) -> str:
    level = "error" if finding.confidence is Confidence.HIGH else "warning"
    value = finding.secret.reveal() if show_secrets else finding.redacted
    props = {
        "file": shown(finding.path, show_secrets),
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
